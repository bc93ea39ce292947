"""SFT throughput of the runtime (conscience.sft) against a plain TRL `SFTTrainer` script on the
same model, data and settings, in the same process, on the same device.

    python scripts/gpu/sft_bench.py [--steps 40] [--batch-size 8] [--out FILE]    # CUDA GPU
    python scripts/gpu/sft_bench.py --tiny                                        # CPU, the tiny model

GPU mode: a random-weight model of the Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads,
2 KV heads, intermediate 4864, vocabulary 151936), config built in-process, trained in bf16
autocast; the tokenizer is the tiny model's, trained in-process. Nothing is downloaded.
`--tiny`: conscience/tiny on CPU (what `npm run bench` runs for `runtime.sft_step_s`).

Both sides train on the same rows: the bundled safety traces, rendered with THE template into
conversational prompt/completion pairs (completion-only loss), with the same SFTConfig (batch
size, max_length, learning rate, seed, logging every step, no saving). The runtime side is
`conscience.sft.main` on a generated `kind: sft` recipe (its probe off: `probe_prompts: 0`,
since the plain script has no probe), so its event stream, callback and trace checking are
inside its time. Steps/s is measured from the step-end log times after `--warmup` steps.
The sides run A B B A (plain first) and each keeps its best. Prints (and writes to --out) JSON:

    {"device", "model", "steps", "batch_size", "max_length",
     "conscience": {"steps_per_s", "step_s"}, "plain": {...}, "ratio": conscience / plain steps/s}
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

from models import build_model  # noqa: E402  (the tiny model or the 0.5B-shape random one)
from steps import median_step_s, steps_per_s  # noqa: E402


def sft_config_keys(args, cuda: bool) -> dict:
    return {
        "max_steps": args.steps,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-5 if cuda else 1e-3,
        "max_length": args.max_length,
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 0,
        "report_to": "none",
        "bf16": cuda,
        "use_cpu": not cuda,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def run_conscience(model_dir: str, work: str, args, cuda: bool) -> list[float]:
    """conscience.sft on a generated recipe; returns the step-log times from its events."""
    from conscience import sft

    out = tempfile.mkdtemp(dir=work, prefix="ours-")
    recipe = os.path.join(work, "sft.yaml")
    keys = {"kind": "sft", "model_name_or_path": model_dir, "dataset_name": sft.BUNDLED_TRACES_NAME, "probe_prompts": 0,
            **sft_config_keys(args, cuda)}
    with open(recipe, "w") as f:
        f.write("".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items()))
    code = sft.main(["--config", recipe, "--output_dir", out])
    if code != 0:
        raise SystemExit(f"conscience.sft exited {code}")
    with open(os.path.join(out, "events.jsonl")) as f:
        events = [json.loads(x) for x in f]
    return [e["time"] for e in events if e["type"] == "metrics" and "loss" in e["values"]]


def run_plain(model_dir: str, work: str, args, cuda: bool) -> list[float]:
    """What a user would write with TRL alone: the same rows, SFTTrainer, a timing callback."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from conscience.sft import BUNDLED_TRACES_PATH
    from conscience.template import PromptTemplate

    t = PromptTemplate()
    with open(BUNDLED_TRACES_PATH) as f:
        rows = [json.loads(x) for x in f if x.strip()]
    ds = Dataset.from_list([{"prompt": t.messages(r["prompt"], r["budget"]),
                             "completion": [{"role": "assistant", "content": t.render(r["safety"], r["answer"])}]} for r in rows])
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                times.append(time.time())

    out = tempfile.mkdtemp(dir=work, prefix="plain-")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=SFTConfig(output_dir=out, **sft_config_keys(args, cuda)),
                         train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(model_dir), callbacks=[Clock()])
    trainer.train()
    del trainer
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU: the tiny model (conscience/tiny)")
    p.add_argument("--steps", type=int, default=None, help="default 40 (GPU), 12 (--tiny)")
    p.add_argument("--warmup", type=int, default=None, help="steps not timed; default 5 (GPU), 2 (--tiny)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    args.steps = args.steps or (12 if args.tiny else 40)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 5)

    import logging

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        raise SystemExit("no CUDA device: run with --tiny for the CPU check")
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as work:
        model_dir = build_model(os.path.join(work, "model"), args.tiny)
        best = {"conscience": 0.0, "plain": 0.0}
        med = {"conscience": float("inf"), "plain": float("inf")}
        for side in ("plain", "conscience", "conscience", "plain"):
            fn = run_plain if side == "plain" else run_conscience
            if cuda:
                torch.cuda.empty_cache()
            times = fn(model_dir, work, args, cuda)
            best[side] = max(best[side], steps_per_s(times, args.warmup))
            med[side] = min(med[side], median_step_s(times, args.warmup))
            logging.getLogger().setLevel(logging.WARNING)
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": "conscience/tiny" if args.tiny else "Qwen2.5-0.5B shape, random weights, bf16 autocast",
        "steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size, "max_length": args.max_length,
        "conscience": {"steps_per_s": best["conscience"], "step_s": 1 / best["conscience"]},
        "plain": {"steps_per_s": best["plain"], "step_s": 1 / best["plain"]},
        "ratio": best["conscience"] / best["plain"],
        "median_step_s": med, "ratio_of_medians": med["plain"] / med["conscience"],
    }
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
