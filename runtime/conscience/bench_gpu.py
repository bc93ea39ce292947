"""GPU throughput of GRPO on a Qwen2.5-0.5B-architecture model with random weights.

    python -m conscience.bench_gpu [--steps 20] [--out bench-gpu.json] [--modes hf,vllm_colocate]

For each mode it runs `conscience.train` (single process, one GPU) on the bundled prompt set
with a random-weight model of the Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads, 2 KV
heads, intermediate 4864, vocabulary 151936; nothing is downloaded: the tokenizer is the
tiny model's, trained in-process) and reads the run's events.jsonl:

* `steps_per_s`: (steps between the first and last metrics event) / (time between them)
* `completion_tokens_per_s`: sum over those steps of completions/mean_length x completions
  per step, divided by the same time

Modes: `hf` (generation with transformers `generate`) and `vllm_colocate` (`use_vllm: true`,
`vllm_mode: colocate`; needs vllm from requirements/gpu.txt). Prints and writes JSON with
the GPU name from `torch.cuda.get_device_name()`. Requires a CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import yaml

QWEN25_05B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def build_model(out: str, seed: int = 0) -> str:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from .tiny_model import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = Qwen2Config(**QWEN25_05B, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, torch_dtype="bfloat16")
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def recipe(model: str, output_dir: str, steps: int, mode: str) -> dict:
    r = {
        "model_name_or_path": model,
        "torch_dtype": "bfloat16",
        "bf16": True,
        "dataset_name": "conscience/safety_prompts",
        "reward_funcs": ["safety_format", "safety_budget", "refusal"],
        "output_dir": output_dir,
        "max_steps": steps,
        "per_device_train_batch_size": 16,
        "num_generations": 8,
        "gradient_accumulation_steps": 1,
        "max_prompt_length": 256,
        "max_completion_length": 256,
        "learning_rate": 1e-6,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "gradient_checkpointing": True,
        "safety": {"budget_source": "label"},
    }
    if mode == "vllm_colocate":
        r.update({"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3})
    elif mode != "hf":
        raise ValueError(f"unknown mode {mode}")
    return r


def measure(events_path: str, per_step_completions: int) -> dict:
    with open(events_path, encoding="utf-8") as f:
        events = [json.loads(l) for l in f if l.strip()]
    metrics = [e for e in events if e["type"] == "metrics"]
    finished = [e for e in events if e["type"] == "run_finished"]
    if len(metrics) < 3 or not finished or finished[-1]["status"] != "completed":
        raise RuntimeError(f"{events_path}: run did not complete with metrics")
    first, last = metrics[0], metrics[-1]
    dt = last["time"] - first["time"]
    tokens = sum((m["values"].get("completions/mean_length") or 0) * per_step_completions for m in metrics[1:])
    return {
        "steps_per_s": (last["step"] - first["step"]) / dt,
        "completion_tokens_per_s": tokens / dt,
        "steps_measured": last["step"] - first["step"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m conscience.bench_gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--modes", default="hf,vllm_colocate")
    p.add_argument("--out", default="bench-gpu.json")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("conscience.bench_gpu: no CUDA GPU; nothing measured", file=sys.stderr)
        return 1
    result = {"gpu": torch.cuda.get_device_name(0), "model": "Qwen2.5-0.5B architecture, random weights", "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(os.path.join(tmp, "model"))
        for mode in a.modes.split(","):
            out = os.path.join(tmp, f"run-{mode}")
            r = recipe(model, out, a.steps, mode)
            path = os.path.join(tmp, f"{mode}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(r, f)
            code = subprocess.call([sys.executable, "-m", "conscience.train", "--config", path])
            if code != 0:
                result["modes"][mode] = {"error": f"exit {code}"}
                continue
            result["modes"][mode] = measure(os.path.join(out, "events.jsonl"), r["per_device_train_batch_size"])
    print(json.dumps(result, indent=2))
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
