"""DeepSpeed ZeRO-2 then ZeRO-3: GRPO training through the shipped recipes/accelerate/zero2.yaml
and zero3.yaml, one process, as `conscience.launch` starts it (issue #14).

    python scripts/gpu/zero.py [--steps 4] [--out FILE]     # CUDA GPU: Qwen2.5-0.5B shape, random weights, bf16
    python scripts/gpu/zero.py --tiny                       # CPU: conscience/tiny, DS_ACCELERATOR=cpu

Nothing is downloaded: the model config is built in-process (scripts/gpu/sft_bench.py's
build_model: hidden 896, 24 layers, vocabulary 151936; the tokenizer is the tiny model's).
Each stage trains `--steps` GRPO steps and saves once at the end; DeepSpeed's own
`checkpoint-N/global_stepN/` folder (ZeRO-partitioned states) is the evidence that DeepSpeed,
not plain DDP, trained. Steps/s is measured from the metrics events' times after the first
step. Prints (and writes to --out) JSON:

    {"device", "model", "steps", "zero2": {"ok", "steps_per_s", "deepspeed_checkpoint", "error"?}, "zero3": {...}}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "runtime"))

from steps import steps_per_s  # noqa: E402


def run_stage(stage: int, model: str, tmp: str, steps: int, tiny: bool) -> dict:
    import yaml

    with open(os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")) as f:
        r = yaml.safe_load(f)
    r.pop("use_cpu", None)  # the trainer's --use_cpu would turn DeepSpeed off
    r.update({
        "model_name_or_path": model, "max_steps": steps, "save_strategy": "steps", "save_steps": steps, "save_total_limit": 1,
        "bf16": not tiny, "torch_dtype": "float32" if tiny else "bfloat16", "logging_steps": 1, "report_to": "none",
        "per_device_train_batch_size": 8, "num_generations": 8, "max_prompt_length": 128, "max_completion_length": 24 if tiny else 64,
        "max_train_samples": 8 * (steps + 1),
    })
    r["launch"] = {"num_processes": 1, "num_machines": 1, "accelerate_config": os.path.join(ROOT, "recipes", "accelerate", f"zero{stage}.yaml")}
    r["safety"] = dict(r.get("safety") or {}, budget_source="label")
    recipe = os.path.join(tmp, f"zero{stage}.yaml")
    with open(recipe, "w") as f:
        yaml.safe_dump(r, f)
    out = os.path.join(tmp, f"out{stage}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.path.join(ROOT, "runtime"), os.environ.get("PYTHONPATH", "")] if p),
               TOKENIZERS_PARALLELISM="false")
    if tiny:
        env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "conscience.launch", "--config", recipe, f"--accelerate-arg=--mixed_precision={'no' if tiny else 'bf16'}",
           "--", "--output_dir", out]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    res: dict = {"ok": p.returncode == 0}
    events = []
    if os.path.exists(os.path.join(out, "events.jsonl")):
        with open(os.path.join(out, "events.jsonl")) as f:
            events = [json.loads(l) for l in f if l.endswith("\n")]
    t = [e["time"] for e in events if e["type"] == "metrics"]
    if len(t) >= 2:
        res["steps_per_s"] = round(steps_per_s(t, 0), 4)
    ds = os.path.join(out, f"checkpoint-{steps}", f"global_step{steps}")
    res["deepspeed_checkpoint"] = sorted(os.listdir(ds)) if os.path.isdir(ds) else None
    fin = [e for e in events if e["type"] == "run_finished"]
    res["status"] = fin[-1]["status"] if fin else None
    if p.returncode != 0 or not res["deepspeed_checkpoint"]:
        res["ok"] = False
        res["error"] = (p.stderr or p.stdout)[-1500:]
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import torch

    from models import build_model  # the Qwen2.5-0.5B-shape random model, or the tiny one

    if not a.tiny and not torch.cuda.is_available():
        print("zero.py: no CUDA GPU (use --tiny on CPU)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(os.path.join(tmp, "model"), a.tiny)
        result = {
            "device": "cpu" if a.tiny else torch.cuda.get_device_name(0),
            "model": "conscience/tiny" if a.tiny else "Qwen2.5-0.5B shape, random weights",
            "steps": a.steps,
        }
        for stage in (2, 3):
            result[f"zero{stage}"] = run_stage(stage, model, tmp, a.steps, a.tiny)
    print(json.dumps(result))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if all(result[f"zero{s}"]["ok"] for s in (2, 3)) else 1


if __name__ == "__main__":
    sys.exit(main())
