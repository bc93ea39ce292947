"""Fixtures shared by the runtime's test modules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test gets the environment the suite started with: loading a recipe in-process sets
    variables a later test's subprocesses inherit (transformers sets ACCELERATE_USE_DEEPSPEED=true
    for a recipe with `deepspeed:`, and every later GRPO run in the suite then tried DeepSpeed;
    a recipe's `env:` section is applied too)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def tiny_openai_server(tmp_path):
    """A real OpenAI-compatible server: `transformers serve` (.venv-serve, built by
    scripts/setup.d/serve.sh) serving a copy of the tiny model on CPU at a free port. Yields
    `base_url` (…/v1) and `model` (the served folder, also its name on the wire); stopped after
    the test. Its log is tmp_path/serve.log (the tail is in the error if it does not come up)."""
    from conscience.tiny_model import ensure_tiny

    serve = os.path.join(ROOT, ".venv-serve", "bin", "transformers")
    assert os.path.exists(serve), f"{serve} is missing: run scripts/setup.d/serve.sh (npm test's setup does)"
    model = str(tmp_path / "tiny")
    shutil.copytree(ensure_tiny(), model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([serve, "serve", model, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
        try:
            deadline = time.time() + 150
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.25)
            yield SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v1", model=model)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
