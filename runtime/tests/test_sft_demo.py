"""The demo pipeline learns (issue #15 Deliver 3): recipes/demo/sft-tiny.yaml, then
recipes/demo/grpo-from-sft.yaml from its output, on CPU with the recipes' fixed seeds.

Asserted from the runs' own events (what the dashboard plots):
- SFT: the probe's safety_format is low before training and >= 0.9 at the end;
- GRPO: run_started.init_from names the SFT run; safety/budget_abs_err over the last 5 steps
  is at most 0.8x the first 5 steps' (the blocks move towards the new budget, tokens_mean
  rises) while safety_format stays >= 0.9.

About 45 s of CPU time (OMP_NUM_THREADS=1: torch's spinning thread pool costs several times
that on a busy 2-core machine). The figures this run gave are in docs/runtime.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

RUNTIME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(RUNTIME)
FORMAT = "rewards/safety_format_reward/mean"
ERR = "safety/budget_abs_err"


# The demo's own model cache, and the demo's model: other test modules set
# CONSCIENCE_TINY_WARMUP=0 (the untrained tiny model, faster to build) for this process; the
# demo must train from the warmed model a user gets, so that setting is dropped here.
DEMO_CACHE = os.path.join(REPO, ".cache", "conscience-demo")


def _run(module, recipe, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONSCIENCE_HEARTBEAT_S": "30", "CONSCIENCE_CACHE": DEMO_CACHE}
    env.pop("CONSCIENCE_TINY_WARMUP", None)
    r = subprocess.run([sys.executable, "-m", module, "--config", os.path.join(REPO, recipe), "--output_dir", str(out), *extra],
                       cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    with open(os.path.join(out, "events.jsonl")) as f:
        return [json.loads(x) for x in f]


def _mean(xs):
    return sum(xs) / len(xs)


def test_sft_then_grpo_learns_the_format_then_the_budget(tmp_path):
    sft_out, grpo_out = tmp_path / "sft", tmp_path / "grpo"
    sft = _run("conscience.sft", "recipes/demo/sft-tiny.yaml", sft_out)
    probes = [e for e in sft if e["type"] == "metrics" and FORMAT in e["values"]]
    assert probes[0]["step"] == 0 and probes[-1]["step"] == 450
    before, after = probes[0]["values"][FORMAT], probes[-1]["values"][FORMAT]
    print(f"SFT safety_format {before:.3f} -> {after:.3f}; budget_abs_err {probes[0]['values'][ERR]:.2f} -> {probes[-1]['values'][ERR]:.2f}")
    assert before <= 0.3
    assert after >= 0.9
    assert sft[-1]["type"] == "run_finished" and sft[-1]["status"] == "completed"

    grpo = _run("conscience.train", "recipes/demo/grpo-from-sft.yaml", grpo_out, "--model_name_or_path", str(sft_out))
    started = grpo[0]
    assert started["type"] == "run_started"
    assert started["init_from"]["run_id"] == sft[0]["run_id"]
    assert started["init_from"]["output_dir"] == str(sft_out)
    steps = [e for e in grpo if e["type"] == "metrics" and ERR in e["values"]]
    assert [e["step"] for e in steps] == list(range(1, 21))
    err = [e["values"][ERR] for e in steps]
    fmt = [e["values"][FORMAT] for e in steps]
    tokens = [e["values"]["safety/tokens_mean"] for e in steps]
    print("GRPO budget_abs_err " + " ".join(f"{x:.1f}" for x in err))
    print(f"GRPO first 5 / last 5: abs_err {_mean(err[:5]):.2f} / {_mean(err[-5:]):.2f}, tokens {_mean(tokens[:5]):.1f} / "
          f"{_mean(tokens[-5:]):.1f}, format {_mean(fmt[:5]):.3f} / {_mean(fmt[-5:]):.3f}")
    assert _mean(err[-5:]) <= 0.8 * _mean(err[:5])
    assert _mean(tokens[-5:]) > _mean(tokens[:5])  # towards the budget of 20, from the SFT traces' 8-12
    assert _mean(fmt[-5:]) >= 0.9
    assert grpo[-1]["status"] == "completed"


def test_demo_recipes_say_to_run_from_the_repository_root():
    """sft-tiny.yaml's output_dir is relative to the cwd, grpo-from-sft.yaml's model path to the
    recipe: the two stages meet only from the repository root, and both recipes say so."""
    for name in ("sft-tiny.yaml", "grpo-from-sft.yaml"):
        with open(os.path.join(REPO, "recipes", "demo", name), encoding="utf-8") as f:
            text = f.read()
        assert "# Run both from the repository root" in text, name
