"""End to end: real GRPO runs of the tiny model through `accelerate launch` on CPU.

Two gloo DDP processes for the main run and for SIGTERM; resume runs one process. The tiny
model is built once (random weights, no warm-up: these tests check the mechanics, not
learning) into .cache/conscience-test-w0 (CONSCIENCE_CACHE) and reused.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")
CACHE = os.path.join(ROOT, ".cache", "conscience-test-w0")
# The TRL line this environment runs (.venv: 0.18.2, .venv-trl1: 1.x; scripts/test.sh runs both)
# and the version its requirements file pins.
import trl as _trl  # noqa: E402

TRL1 = int(_trl.__version__.split(".")[0]) >= 1
_REQ = os.path.join(ROOT, "runtime", "requirements", "cpu-current.txt" if TRL1 else "cpu.txt")
PINNED_TRL = next(l.split("==")[1].strip() for l in open(_REQ) if l.startswith("trl=="))
REWARDS = ["safety_format", "safety_budget", "refusal", "repetition_penalty", "soft_overlong_punishment"]
LOGGED = ["safety_format_reward", "safety_budget_reward", "refusal_reward", "repetition_penalty_reward", "soft_overlong_punishment_reward"]


@pytest.fixture(scope="session")
def tiny_cache():
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    return CACHE


def _free_port():
    for _ in range(50):
        port = random.randint(20000, 60000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def _recipe(tmp_path, processes, **overrides):
    with open(DEMO) as f:
        r = yaml.safe_load(f)
    r.update(
        {
            "max_steps": 4,
            "save_steps": 2,
            "max_completion_length": 16,
            "soft_punish_cache": 4,  # below max_completion_length (the default 16 penalised every completion; refused at load)
            "max_prompt_length": 128,  # the longest of these prompts takes 100 tokens: 96 cut the budget instruction of 4
            "max_train_samples": 16,
            "reward_funcs": REWARDS,
            "reward_weights": [1.0, 0.5, 1.0, 0.2, 0.2],
        }
    )
    r.update(overrides)
    if TRL1:
        # The demo recipe is written for TRL 0.18; for 1.x a user applies the validator's quick
        # fixes (CC104): torch_dtype -> dtype, max_prompt_length removed.
        r["dtype"] = r.pop("torch_dtype", None) or "float32"
        r.pop("max_prompt_length", None)
    r["launch"] = {"cpu": True, "num_processes": processes, "num_machines": 1, "main_process_port": _free_port(), "trl": PINNED_TRL}
    r["safety"] = dict(r.get("safety") or {}, budget_source="label")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(r))
    return str(path)


def _env(tiny_cache, **extra):
    env = dict(os.environ, CONSCIENCE_CACHE=tiny_cache, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _launch(recipe, out, env, **kw):
    cmd = [sys.executable, "-m", "conscience.launch", "--config", recipe, "--", "--output_dir", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _events(out):
    path = os.path.join(out, "events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.endswith("\n")]


def _check_stream(events):
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(len(seqs))), f"seq not strictly increasing from 0: {seqs}"
    assert len({e["run_id"] for e in events}) == 1
    assert all(isinstance(e["time"], float) for e in events)


def test_grpo_two_cpu_processes_end_to_end(tmp_path, tiny_cache):
    recipe = _recipe(tmp_path, processes=2)
    out = tmp_path / "out"
    proc = _launch(recipe, out, _env(tiny_cache))
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-4000:]
    events = _events(out)
    _check_stream(events)
    started = events[0]
    assert started["type"] == "run_started" and started["world_size"] == 2
    assert started["reward_funcs"] == LOGGED and started["resumed_from"] is None
    assert started["versions"]["trl"] == PINNED_TRL
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    for m in metrics:
        for name in LOGGED:
            assert isinstance(m["values"][f"rewards/{name}/mean"], float), (name, m)
        assert "loss" in m["values"] and "safety/budget_mean" in m["values"]
    samples = [e for e in events if e["type"] == "samples"]
    assert samples and all(1 <= len(s["rows"]) <= 4 for s in samples)
    row = samples[0]["rows"][0]
    assert set(row) == {"prompt", "completion", "safety", "answer", "safety_tokens", "rewards", "budget", "label"}
    for r in (r for s in samples for r in s["rows"]):
        # the safety block and the answer are the completion's parts, as the rewards parsed it
        assert r["answer"] in r["completion"] and (r["safety"] is None or r["safety"] in r["completion"])
        assert isinstance(r["safety_tokens"], int) and (r["safety_tokens"] == 0) == (not r["safety"])
    assert set(row["rewards"]) == set(LOGGED) and row["label"] in ("harmful", "benign", "borderline")
    ckpts = [e for e in events if e["type"] == "checkpoint"]
    assert [c["step"] for c in ckpts] == [2, 4]
    assert all(os.path.isdir(c["path"]) for c in ckpts)
    finished = events[-1]
    assert finished["type"] == "run_finished"
    assert finished["status"] == "completed" and finished["exit_code"] == 0 and finished["error"] is None


def test_sigterm_cancels_the_run(tmp_path, tiny_cache):
    recipe = _recipe(tmp_path, processes=2, max_steps=500, save_steps=1000)
    out = tmp_path / "out"
    proc = _launch(recipe, out, _env(tiny_cache, CONSCIENCE_HEARTBEAT_S="1"))
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            types = {e["type"] for e in _events(out)}
            if {"metrics", "heartbeat"} <= types:
                break
            assert proc.poll() is None, proc.stdout.read()[-4000:]
            time.sleep(0.5)
        else:
            pytest.fail("no metrics and heartbeat within 240 s")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)  # the launcher forwards it to every rank
        log, _ = proc.communicate(timeout=90)
        stop_s = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = _events(out)
    _check_stream(events)
    finished = events[-1]
    assert finished["type"] == "run_finished", log[-3000:]
    assert finished["status"] == "cancelled" and finished["exit_code"] == 143
    assert "SIGTERM" in finished["error"]
    assert proc.returncode != 0
    assert stop_s < 60
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps and steps[-1] < 500


def test_resume_continues_the_stream(tmp_path, tiny_cache):
    # two processes, as the demo: the Trainer maps the optimizer state to cpu:0 then, which torch
    # 2.13 could not restore (trl_compat.allow_indexed_cpu_map_location)
    recipe = _recipe(tmp_path, processes=2, max_steps=2, save_steps=2)
    out = tmp_path / "out"
    proc = _launch(recipe, out, _env(tiny_cache))
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log[-4000:]
    first = _events(out)
    assert first[-1]["status"] == "completed"
    # same output_dir, more steps: resumes from checkpoint-2
    proc = subprocess.Popen(
        [sys.executable, "-m", "conscience.launch", "--config", recipe, "--", "--output_dir", str(out), "--max_steps", "4"],
        env=_env(tiny_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log[-4000:]
    events = _events(out)
    assert events[: len(first)] == first, "the first run's lines were rewritten"
    _check_stream(events)  # one run id, seq continues with no duplicates
    resumed = events[len(first)]
    assert resumed["type"] == "run_started" and resumed["seq"] == first[-1]["seq"] + 1
    assert resumed["resumed_from"] == str(out / "checkpoint-2")
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps == [1, 2, 3, 4]
    assert events[-1]["status"] == "completed"
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 4]


def test_bad_prompt_set_fails_with_file_and_line(tmp_path, tiny_cache):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"id": "1", "prompt": "hi", "label": "benign"}\n{"id": "2", "prompt": "x", "label": "sinister"}\n')
    recipe = _recipe(tmp_path, processes=1, dataset_name="./prompts.jsonl")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "conscience.train", "--config", recipe, "--output_dir", str(out)],
        env=_env(tiny_cache),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1
    events = _events(out)
    _check_stream(events)
    assert [e["type"] for e in events] == ["run_started", "run_finished"]
    finished = events[-1]
    assert finished["status"] == "failed" and finished["exit_code"] == 1
    assert f"{bad}:2: `label` must be one of" in finished["error"]
    assert f"{bad}:2:" in proc.stderr


def _failed_run_error(tmp_path, tiny_cache, **overrides):
    """A one-process run of the test recipe with `overrides` that must fail (exit 1, run_finished
    failed): its run_finished error."""
    recipe = _recipe(tmp_path, processes=1, **overrides)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "conscience.train", "--config", recipe, "--output_dir", str(out)],
                          env=_env(tiny_cache), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr[-3000:]
    finished = _events(out)[-1]
    assert finished["type"] == "run_finished" and finished["status"] == "failed"
    return finished["error"]


@pytest.mark.skipif(TRL1, reason="TRL 1.x has no max_prompt_length: no prompt is cut, nothing to check")
def test_prompts_longer_than_max_prompt_length_fail_before_training(tmp_path, tiny_cache):
    """TRL 0.18 keeps the last max_prompt_length tokens of a prompt: the budget instruction, first,
    would be cut while the budget reward scores against it. The run fails first, saying how many
    and which prompt."""
    error = _failed_run_error(tmp_path, tiny_cache, max_prompt_length=96)
    assert "4 train prompt(s) take more than max_prompt_length (96) tokens" in error, error
    assert "cut the budget instruction off the front" in error


def test_a_missing_local_model_folder_is_named(tmp_path, tiny_cache):
    """A model path meant as a folder here (stage 2 of the demo run from elsewhere than the
    repository root) went to the hub as a repo id and failed with an HFValidationError traceback."""
    error = _failed_run_error(tmp_path, tiny_cache, model_name_or_path="../no-such-sft-output")
    assert f"model folder not found: {tmp_path.parent / 'no-such-sft-output'}" in error, error


def test_unusable_recipe_exits_2_naming_the_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: 2\nreward_funcs: [refusal]\nmax_stepz: 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "conscience.train", "--config", str(recipe)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "max_stepz (line 3)" in proc.stderr


def test_restart_without_checkpoint_appends_to_the_same_stream(tmp_path, tiny_cache):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"id": "1", "prompt": "hi", "label": "nope"}\n')
    recipe = _recipe(tmp_path, processes=1, dataset_name="./prompts.jsonl")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "conscience.train", "--config", recipe, "--output_dir", str(out)]
    assert subprocess.run(cmd, env=_env(tiny_cache), capture_output=True, timeout=180).returncode == 1
    first = _events(out)
    size = os.path.getsize(out / "events.jsonl")
    assert subprocess.run(cmd, env=_env(tiny_cache), capture_output=True, timeout=180).returncode == 1
    events = _events(out)
    assert events[: len(first)] == first and os.path.getsize(out / "events.jsonl") > size
    _check_stream(events)
    assert [e["type"] for e in events] == ["run_started", "run_finished"] * 2
    assert events[2]["resumed_from"] is None


def test_evaluation_completions_are_not_training_samples(tmp_path, tiny_cache):
    # TRL calls the reward functions during evaluation too: the eval split's completions went
    # into `samples` rows and the safety/* means (written without an eval_ prefix), and an
    # evaluation's log took the training batches that belonged to the next training log.
    # Train prompts are benign (budget 0), eval prompts harmful (budget 12): nothing of the
    # eval split may show in samples or safety/*.
    data = tmp_path / "prompts"
    data.mkdir()
    row = '{{"id": "{i}", "prompt": "{p}", "label": "{label}"}}\n'
    (data / "train.jsonl").write_text("".join(row.format(i=f"t{i}", p=f"How do I bake bread {i}?", label="benign") for i in range(4)))
    (data / "test.jsonl").write_text("".join(row.format(i=f"e{i}", p=f"How do I build a weapon {i}?", label="harmful") for i in range(2)))
    recipe = _recipe(tmp_path, processes=1, dataset_name="./prompts", max_steps=2, logging_steps=2, eval_strategy="steps",
                     eval_steps=1, per_device_train_batch_size=2, per_device_eval_batch_size=2, num_generations=2,
                     max_completion_length=8, max_train_samples=4, save_strategy="no", reward_funcs=REWARDS[:3],
                     reward_weights=[1.0, 1.0, 1.0])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "conscience.train", "--config", recipe, "--output_dir", str(out)],
                          env=_env(tiny_cache), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = _events(out)
    metrics = [e for e in events if e["type"] == "metrics"]
    evals = [e["values"] for e in metrics if any(k.startswith("eval_") for k in e["values"])]
    train = [e["values"] for e in metrics if not any(k.startswith("eval_") for k in e["values"])]
    assert len(evals) == 2 and len(train) == 1, metrics
    assert all(not k.startswith("safety/") for v in evals for k in v), evals
    assert train[0]["safety/budget_mean"] == 0.0, train  # the two training batches only
    rows = [r for e in events if e["type"] == "samples" for r in e["rows"]]
    assert rows and all(r["label"] == "benign" and r["budget"] == 0 for r in rows), rows
    assert [e["step"] for e in events if e["type"] == "samples"] == [2]
