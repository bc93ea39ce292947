"""GRPO throughput of the runtime (conscience.train) against a plain TRL GRPOTrainer script on the
same model, prompts and settings, in the same process, on the same device (issue #19's benchmark:
the runtime on the current stack vs plain TRL 1.x, ratio of steps/s >= 0.98).

    python scripts/gpu/trl1_grpo.py [--steps 10] [--warmup 2] [--out FILE]    # CUDA GPU
    python scripts/gpu/trl1_grpo.py --tiny                                    # CPU, the tiny model

GPU mode: a random-weight model of the Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads,
2 KV heads, intermediate 4864, vocabulary 151936), config built in-process and saved in bf16; the
tokenizer is the tiny model's, trained in-process. Nothing is downloaded. Batch 16 completions
per step (2 prompts x 8 generations), up to 128 new tokens, bf16, transformers `generate`.
`--tiny`: conscience/tiny on CPU, 4 completions of 16 tokens (to check the script runs).

Runs on whichever TRL is installed (1.x on the GPU host with transformers 5.x; the API
differences go through conscience.trl_compat, as in the trainer).

Both sides train on the same prompts (the bundled safety prompts, as the runtime renders them
with THE prompt template and label budgets) with the same GRPOConfig keys and seed. The runtime
side is `conscience.train.main` on a generated recipe, so its rewards (safety_format,
safety_budget, refusal), sample recording and event stream are inside its time. The plain side
is what a user writes with TRL alone: GRPOTrainer with one trivial reward function (completion
length), and a timing callback. Steps/s comes from the step-end times after `--warmup` steps.
Prints (and writes to --out) JSON:

    {"device", "versions", "model", "steps", "warmup",
     "conscience": {"steps_per_s"}, "plain": {"steps_per_s"}, "ratio": conscience / plain}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "runtime")))

from models import build_model as _build  # noqa: E402
from steps import median_step_s, steps_per_s  # noqa: E402


def build_model(out: str, tiny: bool) -> str:
    """The untrained tiny model, or the 0.5B-shape random model in bfloat16; sampling on."""
    return _build(out, tiny, dtype="bfloat16", warmup_steps=0, generation={"do_sample": True})


def config_keys(args, cuda: bool) -> dict:
    """The GRPOConfig keys both sides use (as recipe keys for the runtime, as kwargs for plain)."""
    g = 8 if cuda else 4
    return {
        "max_steps": args.steps,
        "per_device_train_batch_size": 16 if cuda else 4,
        "num_generations": g,
        "gradient_accumulation_steps": 1,
        "max_completion_length": 128 if cuda else 16,
        "learning_rate": 1e-6,
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 0,
        "report_to": "none",
        "bf16": cuda,
        "use_cpu": not cuda,
        "gradient_checkpointing": cuda,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def dtype_key() -> str:
    from conscience import trl_compat

    return "dtype" if trl_compat.is_trl1() else "torch_dtype"


def run_conscience(model_dir: str, work: str, args, cuda: bool) -> list[float]:
    """conscience.train on a generated recipe; returns the step times from its metrics events."""
    import trl

    from conscience import train

    out = tempfile.mkdtemp(dir=work, prefix="ours-")
    recipe = os.path.join(work, "grpo.yaml")
    keys = {"model_name_or_path": model_dir, dtype_key(): "bfloat16" if cuda else "float32",
            "dataset_name": "conscience/safety_prompts", "reward_funcs": ["safety_format", "safety_budget", "refusal"],
            **config_keys(args, cuda)}
    if not trl.__version__.startswith("0."):
        keys.pop("max_prompt_length", None)
    with open(recipe, "w") as f:
        f.write("".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items()))
        f.write(f"safety:\n  budget_source: label\nlaunch:\n  trl: {json.dumps(trl.__version__)}\n")
    code = train.main(["--config", recipe, "--output_dir", out])
    if code != 0:
        raise SystemExit(f"conscience.train exited {code}")
    with open(os.path.join(out, "events.jsonl")) as f:
        events = [json.loads(x) for x in f]
    return [e["time"] for e in events if e["type"] == "metrics" and "loss" in e["values"]]


def run_plain(model_dir: str, work: str, args, cuda: bool) -> list[float]:
    """What a user would write with TRL alone: the same prompts, GRPOTrainer, one simple reward."""
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from conscience.prompt_sets import assign_budgets, load_prompts, to_grpo_dataset
    from conscience.recipe import SafetyConfig

    safety = SafetyConfig(budget_source="label")
    rows, _ = assign_budgets(load_prompts("conscience/safety_prompts"), safety, {})
    ds = to_grpo_dataset(rows, safety).select_columns(["prompt"])
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                times.append(time.time())

    def length_reward(completions, **kw):
        return [min(1.0, len(c[0]["content"] if isinstance(c, list) else c) / 200) for c in completions]

    out = tempfile.mkdtemp(dir=work, prefix="plain-")
    cfg = GRPOConfig(output_dir=out, model_init_kwargs={dtype_key(): "bfloat16" if cuda else "float32"}, **config_keys(args, cuda))
    trainer = GRPOTrainer(model=model_dir, reward_funcs=[length_reward], args=cfg, train_dataset=ds,
                          processing_class=AutoTokenizer.from_pretrained(model_dir), callbacks=[Clock()])
    trainer.train()
    del trainer
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU: the tiny model (conscience/tiny)")
    p.add_argument("--steps", type=int, default=None, help="default 10 (GPU), 6 (--tiny)")
    p.add_argument("--warmup", type=int, default=2, help="steps not timed")
    p.add_argument("--order", default="plain,conscience,conscience,plain",
                   help="which trainer runs when, comma-separated (each side needs at least one run); the "
                        "H100 call of 2026-11-26 ran plain,conscience and read 1.78, its first trainer slower")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    sides = args.order.split(",")
    if set(sides) != {"plain", "conscience"}:
        p.error("--order: name plain and conscience, each at least once, and nothing else")
    import torch
    import transformers
    import trl

    cuda = not args.tiny
    if cuda and not torch.cuda.is_available():
        print("trl1_grpo: no CUDA GPU (use --tiny on CPU)", file=sys.stderr)
        return 1
    args.steps = args.steps or (10 if cuda else 6)
    os.environ.setdefault("OMP_NUM_THREADS", "1" if not cuda else os.environ.get("OMP_NUM_THREADS", "8"))
    with tempfile.TemporaryDirectory() as work:
        model = build_model(os.path.join(work, "model"), tiny=not cuda)
        runs: dict[str, list[list[float]]] = {"plain": [], "conscience": []}
        for side in sides:
            if cuda:
                torch.cuda.empty_cache()
            runs[side].append((run_plain if side == "plain" else run_conscience)(model, work, args, cuda))
    # Best of each side's runs: the first trainer in a process pays for warm-ups the second does not.
    plain, ours = (max(steps_per_s(t, args.warmup) for t in runs[k]) for k in ("plain", "conscience"))
    plain_med, ours_med = (min(median_step_s(t, args.warmup) for t in runs[k]) for k in ("plain", "conscience"))
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "model": "conscience/tiny" if not cuda else "Qwen2.5-0.5B shape, random weights, bf16",
        "steps": args.steps,
        "warmup": args.warmup,
        "order": args.order,
        "conscience": {"steps_per_s": round(ours, 4), "median_step_s": round(ours_med, 4)},
        "plain": {"steps_per_s": round(plain, 4), "median_step_s": round(plain_med, 4)},
        "ratio": round(ours / plain, 4),
        "ratio_of_medians": round(plain_med / ours_med, 4),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
