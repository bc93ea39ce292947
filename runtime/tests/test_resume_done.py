"""Issue #16 item 7: resuming a run whose last checkpoint already reached max_steps trained one
step more ("step 401 of 400"; reproduced here with max_steps 2: it trained step 3). The trainer
now ends such a resume at once: a new run_started (resumed_from set), no training step,
run_finished completed. The real trainer on the tiny in-process model, one CPU process."""

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")
CACHE = os.path.join(ROOT, ".cache", "conscience-test-w0")


def _events(out):
    with open(os.path.join(out, "events.jsonl"), encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.endswith("\n")]


def test_resuming_a_run_at_max_steps_trains_nothing_more(tmp_path):
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    with open(DEMO) as f:
        r = yaml.safe_load(f)
    r.update({"max_steps": 2, "save_steps": 2, "max_completion_length": 16, "max_prompt_length": 96, "max_train_samples": 16})
    r.pop("launch", None)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(r))
    out = tmp_path / "out"
    env = dict(os.environ, CONSCIENCE_CACHE=CACHE, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "conscience.train", "--config", str(recipe), "--output_dir", str(out)]
    for attempt in (1, 2):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"attempt {attempt}: {p.stderr[-3000:]}"
    events = _events(out)
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps == [1, 2], f"trained past max_steps: {steps}"
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2 and starts[1]["resumed_from"] == str(out / "checkpoint-2")
    finished = [e for e in events if e["type"] == "run_finished"]
    assert [e["status"] for e in finished] == ["completed", "completed"]
    assert finished[1]["summary"]["trained"] is False
    assert "nothing left to train" in p.stderr
