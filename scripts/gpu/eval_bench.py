"""Throughput of the eval path (conscience.eval, transformers engine) against plain
`transformers` `generate` on the same prompts, in the same process, on the same device.

    python scripts/gpu/eval_bench.py [--prompts 1024] [--max-new-tokens 256] [--batch-size 128]   # CUDA GPU
    python scripts/gpu/eval_bench.py --tiny                                                      # CPU, the tiny model

GPU mode: a random-weight model of the Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads,
2 KV heads, intermediate 4864, vocabulary 151936), config built in-process, bfloat16; the
tokenizer is the tiny model's, trained in-process (ids it does not know decode to nothing).
Nothing is downloaded. `--tiny`: conscience/tiny on CPU (what `npm run bench` runs).

Both paths see the same rendered prompts (THE template, budget `fixed:64`), the same batch
size, left padding, greedy decoding and max_new_tokens; the model's EOS is disabled so every
completion is exactly max_new_tokens long and completion tokens = prompts x max_new_tokens
on both sides. The eval path also splits, judges and writes completions.jsonl/results.json
(that work is inside its time), and computes its shared prefix's cache afresh each repeat.
Each path runs `--repeats` times after one warm-up batch, alternating; the best time of each
is kept, and each pair's ratio too. Prints JSON:

    {"device", "model", "prompts", "max_new_tokens", "batch_size",
     "eval": {"seconds", "prompts_per_s", "completion_tokens_per_s"},
     "generate": {...same...}, "ratio": eval tokens/s / generate tokens/s (best of each),
     "pair_ratios", "ratio_median_of_pairs"}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "runtime"))

from models import build_model as _build  # noqa: E402


def build_model(out: str, tiny: bool) -> str:
    """The model folder (0.5B shape in bfloat16), with generation_config's EOS removed
    (fixed-length completions)."""
    return _build(out, tiny, dtype="bfloat16", generation={"eos_token_id": None, "do_sample": False})


def write_prompts(path: str, n: int) -> None:
    from conscience.prompt_sets import BUNDLED_PATH

    with open(BUNDLED_PATH, encoding="utf-8") as f:
        base = [json.loads(line) for line in f if line.strip()]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            r = base[i % len(base)]
            f.write(json.dumps({"id": f"p{i}", "prompt": r["prompt"] if i < len(base) else f"{r['prompt']} ({i // len(base)})",
                                "label": r["label"], "category": r.get("category", "")}) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU: the tiny model (conscience/tiny)")
    p.add_argument("--prompts", type=int, default=None, help="default 1024 (GPU), 64 (--tiny)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 256 (GPU), 16 (--tiny)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (GPU), 16 (--tiny)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", help="also write the JSON here")
    a = p.parse_args(argv)
    import torch

    if not a.tiny and not torch.cuda.is_available():
        print("eval_bench: no CUDA GPU (use --tiny on CPU)", file=sys.stderr)
        return 1
    n = a.prompts or (64 if a.tiny else 1024)
    new_tokens = a.max_new_tokens or (16 if a.tiny else 256)
    bs = a.batch_size or (16 if a.tiny else 128)
    device = "cpu" if a.tiny else "cuda"
    if a.tiny:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conscience import eval as ev
    from conscience.template import PromptTemplate

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(os.path.join(tmp, "model"), a.tiny)
        prompts = os.path.join(tmp, "prompts.jsonl")
        write_prompts(prompts, n)
        recipe_path = os.path.join(tmp, "eval.yaml")
        dtype = "float32" if a.tiny else "bfloat16"
        with open(recipe_path, "w") as f:
            json.dump({"kind": "eval", "model_name_or_path": model_dir, "dataset_name": prompts, "arms": ["fixed:64"],
                       "engine": "transformers", "batch_size": bs, "max_new_tokens": new_tokens, "temperature": 0.0,
                       "torch_dtype": dtype, "device": device, "output_dir": os.path.join(tmp, "out"),
                       # the engine's path against generate, as measured since 2026-11-26; the
                       # classifier judge's own cost is timed apart (bench/eval.bench.ts, eval.judge_*)
                       "judge": {"kind": "detector"}}, f)
        recipe = ev.load_eval_recipe(recipe_path)
        template = PromptTemplate.from_recipe(recipe.safety, recipe.system_prompt)
        engine = ev.TransformersEngine(recipe.config, [template.open_tag, template.close_tag])

        # the peer: plain transformers generate over the same rendered prompts, in file order
        tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        model = engine.model  # the same weights object: only the path around generate differs
        rows, _, _ = ev.read_prompts(recipe.config)
        messages = [ev.arm_messages(template, r["prompt"], 64) for r in rows]

        def plain_generate() -> float:
            # the same work a plain script does: render each chat, generate, decode
            t0 = time.perf_counter()
            texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
            for i in range(0, len(texts), bs):
                enc = tok(texts[i:i + bs], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                with torch.inference_mode():
                    out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
                tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        def eval_path(k: int) -> float:
            import dataclasses
            import shutil

            out_dir = os.path.join(tmp, f"out{k}")
            shutil.rmtree(out_dir, ignore_errors=True)
            r = dataclasses.replace(recipe, config=dataclasses.replace(recipe.config, output_dir=out_dir))
            engine._prefix = None  # a fresh eval computes its shared prefix's cache inside its time
            t0 = time.perf_counter()
            res = ev.run_eval(r, engine=engine, log=lambda m: None)
            if device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            assert res["done"] == n and not res["partial"], res
            return dt

        # warm-up: one batch through generate (kernels, allocator caches)
        texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages[:bs]]
        enc = tok(texts[:bs], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
        t_gen, t_eval = [], []
        for k in range(a.repeats):
            t_gen.append(plain_generate())
            t_eval.append(eval_path(k))

    tokens = n * new_tokens
    best_e, best_g = min(t_eval), min(t_gen)
    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
        "model": "conscience/tiny (CPU)" if a.tiny else "Qwen2.5-0.5B architecture, random weights, bfloat16",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "prompts": n, "max_new_tokens": new_tokens, "batch_size": bs, "repeats": a.repeats,
        "eval": {"seconds": best_e, "prompts_per_s": n / best_e, "completion_tokens_per_s": tokens / best_e, "all_seconds": t_eval},
        "generate": {"seconds": best_g, "prompts_per_s": n / best_g, "completion_tokens_per_s": tokens / best_g, "all_seconds": t_gen},
        "ratio": best_g / best_e,
        # each repeat's generate time over the eval time that followed it: one pair shares the
        # machine's state, so their median holds still where best-of-N swings on a busy host
        "pair_ratios": [g / e for g, e in zip(t_gen, t_eval)],
        "ratio_median_of_pairs": statistics.median(g / e for g, e in zip(t_gen, t_eval)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
