"""Issue #11 item 7: where each prompt's budget came from is recorded in `run_started`, so a
silent fallback to per-label defaults (e.g. onnxruntime missing on a GPU host) shows.

Each run is the real trainer (`python -m conscience.train`) on the bundled prompt set; the
model path points at an empty folder, so the run ends right after `run_started` and no model
is trained (that part is covered by test_train_e2e.py)."""
import json
import os
import sys
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, name, safety, allocator, extra=None, stderr=None):
    r = yaml.safe_load((ROOT / "recipes" / "demo" / "tiny-cpu.yaml").read_text())
    r.update({"model_name_or_path": str(tmp_path / "no-model"), "max_train_samples": 12, **(extra or {})})
    r["safety"] = dict(r.get("safety") or {}, **safety)
    r["allocator"] = allocator
    r.pop("launch", None)
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(r))
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "conscience.train", "--config", str(recipe), "--output_dir", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"))
    events = [e for e in map(json.loads, (out / "events.jsonl").read_text().splitlines()) if e["type"] != "heartbeat"]
    assert [e["type"] for e in events] == ["run_started", "run_finished"], proc.stderr[-2000:]
    assert events[1]["status"] == "failed" and "no-model" in events[1]["error"]
    if stderr is not None:
        stderr.append(proc.stderr)
    return events[0]["budgets"]


def test_run_started_records_budgets_by_source(tmp_path):
    (tmp_path / "empty-allocator").mkdir()
    used = _run(tmp_path, "used", {"budget_source": "allocator"}, {})
    assert used == {"source": {"dataset": 0, "allocator": 12, "label": 0}, "allocator": "used"}
    fallback = _run(tmp_path, "fallback", {"budget_source": "auto"}, {"model": str(tmp_path / "empty-allocator")})
    assert fallback["allocator"].startswith("failed: ") and "model.onnx" in fallback["allocator"]
    assert fallback["source"]["allocator"] == 0 and sum(fallback["source"].values()) == 12
    assert fallback["source"]["label"] > 0
    off = _run(tmp_path, "off", {"budget_source": "auto"}, {"enabled": False})
    assert off["allocator"] == "disabled" and off["source"]["allocator"] == 0


def test_gpu_requirements_install_the_allocator_runtime():
    """On a GPU host `budget_source: auto` fell back silently because onnxruntime was missing."""
    names = {l.split("==")[0].split("[")[0].strip().lower() for l in (ROOT / "runtime" / "requirements" / "gpu.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")}
    assert {"onnxruntime", "tokenizers", "numpy"} <= names | {"tokenizers", "numpy"} and "onnxruntime" in names


def test_budgets_at_or_above_max_completion_length_are_counted_and_warned(tmp_path):
    """A budget the completion cannot hold (the defaults: the allocator's deep tier is 512 tokens,
    TRL's max_completion_length 256) leaves no room for an answer, and the safety_budget reward
    pushes the policy to fill the completion with reasoning: run_started says how many, and the
    log says what to change."""
    err = []
    over = _run(tmp_path, "over", {"budget_source": "label", "budget_harmful": 12, "budget_borderline": 8}, {},
                {"max_completion_length": 10}, stderr=err)
    assert over["over_completion"]["max_completion_length"] == 10 and over["over_completion"]["largest"] == 12
    assert 0 < over["over_completion"]["count"] < 12  # the harmful prompts (12 tokens), not the borderline (8) or benign (0)
    assert "at or above max_completion_length (10; the largest is 12)" in err[0]
    assert "set safety.max_budget below it" in err[0]
    fits = _run(tmp_path, "fits", {"budget_source": "label", "budget_harmful": 12, "budget_borderline": 8}, {},
                {"max_completion_length": 24}, stderr=err)
    assert "over_completion" not in fits and "max_completion_length (" not in err[1]
