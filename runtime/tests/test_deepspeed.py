"""DeepSpeed executed: ZeRO-2 and ZeRO-3 runs of the tiny model through the shipped
recipes/accelerate/zero2.yaml and zero3.yaml, one process on CPU (DS_ACCELERATOR=cpu, gloo).

Evidence that DeepSpeed (not plain DDP) trained: the checkpoint holds DeepSpeed's own
`global_stepN/` folder with ZeRO-partitioned model and optimizer states. One process only: with
several CPU processes DeepSpeed under accelerate is not reliable (see docs/launch.md).
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")
CACHE = os.path.join(ROOT, ".cache", "conscience-test-w0")


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_stage_trains_and_saves_partitioned_states(tmp_path, stage):
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    with open(DEMO) as f:
        r = yaml.safe_load(f)
    r.update({"max_steps": 2, "max_completion_length": 8, "max_prompt_length": 128, "max_train_samples": 8,
              "save_strategy": "steps", "save_steps": 2, "bf16": False})
    # no launch.cpu / use_cpu: the trainer's --use_cpu would silently turn DeepSpeed off;
    # DS_ACCELERATOR=cpu puts DeepSpeed itself on the CPU
    r.pop("use_cpu", None)
    r["launch"] = {"num_processes": 1, "num_machines": 1, "accelerate_config": os.path.join(ROOT, "recipes", "accelerate", f"zero{stage}.yaml")}
    r["safety"] = dict(r.get("safety") or {}, budget_source="label")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(r))
    out = tmp_path / "out"
    env = dict(os.environ, CONSCIENCE_CACHE=CACHE, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", DS_ACCELERATOR="cpu",
               PYTHONPATH=os.path.join(ROOT, "runtime"))
    p = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", str(recipe), "--accelerate-arg=--mixed_precision=no",
                        "--", "--output_dir", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    with open(out / "events.jsonl") as f:
        last = [json.loads(l) for l in f][-1]
    assert last["type"] == "run_finished" and last["status"] == "completed"
    ds = out / "checkpoint-2" / "global_step2"
    assert ds.is_dir(), f"no DeepSpeed checkpoint folder: {sorted(os.listdir(out / 'checkpoint-2'))}"
    assert glob.glob(str(ds / "*zero_pp_rank_0_*optim_states.pt")), sorted(os.listdir(ds))
