"""Python onnxruntime timings for the allocator (the peer for bench/allocator.bench.ts).

    python -m conscience.allocator bench --model models/allocator --n 1000

Prints one JSON object: p50_ms / p99_ms (one prompt per call: tokenize + session.run),
batch_per_s (prompts per second through Allocator.run_texts: tokenize all, batch by token
count, `batch` prompts per call, as AllocatorModel.score does in Node), batch_unsorted_per_s
(consecutive `batch`-sized calls in input order), model_mb (model.onnx), plus the settings used. Prompts are the labelled set's own prompts,
cycled to n.

With `--profile`, the batched pass is run once more under onnxruntime's profiler and
`op_share` gives each operator type's share of the time spent in the graph's nodes (the ten
largest, in percent; the rest as "other"): where the allocator's time goes, for speed work.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .policy import default_model_dir
from .score import Allocator

DATA = Path(__file__).resolve().parents[1] / "data" / "allocator_prompts.jsonl"


def bench_prompts(n: int) -> list[str]:
    prompts: list[str] = []
    with DATA.open("r", encoding="utf-8") as f:
        for line in f:
            prompts.append(json.loads(line)["prompt"])
    return [prompts[i % len(prompts)] for i in range(n)]


def op_share(alloc: Allocator, prompts: list[str], batch: int, threads: int | None) -> dict[str, float]:
    """Each operator type's share (percent) of the node time of one batched pass, from
    onnxruntime's profiler (a second session over the same model; its trace file is removed)."""
    import collections
    import os
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "allocator")
        sess = ort.InferenceSession(str(alloc.dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
        plain, alloc.sess = alloc.sess, sess
        try:
            alloc.run_texts(prompts, batch=batch, sort=True)
        finally:
            alloc.sess = plain
        with open(sess.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    per_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e.get("args", {}).get("op_name", "?")] += e.get("dur", 0)
    total = sum(per_op.values()) or 1
    top = per_op.most_common(10)
    share = {op: round(100 * d / total, 1) for op, d in top}
    rest = total - sum(d for _, d in top)
    if rest:
        share["other"] = round(100 * rest / total, 1)
    return share


def bench(model: str | None, n: int = 1000, batch: int = 32, threads: int | None = None, profile: bool = False) -> dict[str, Any]:
    if n < 1 or batch < 1:
        raise ValueError(f"--n and --batch must be at least 1, got {n} and {batch}")
    model_dir = Path(model) if model else default_model_dir()
    alloc = Allocator(model_dir, threads=threads)
    prompts = bench_prompts(n)
    for p in prompts[:20]:  # warm-up
        alloc.run(*alloc.encode([p])[:2])
    lat = []
    for p in prompts:
        t = time.perf_counter()
        ids, mask, _, _ = alloc.encode([p])
        alloc.run(ids, mask)
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    alloc.run_texts(prompts, batch=batch, sort=True)  # what bench/allocator.bench.ts times in Node
    dt = time.perf_counter() - t
    t = time.perf_counter()
    alloc.run_texts(prompts, batch=batch, sort=False)
    dt_unsorted = time.perf_counter() - t
    lat_ms = np.array(lat) * 1000
    extra = {"op_share": op_share(alloc, prompts, batch, threads)} if profile else {}
    return {
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 4),
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 4),
        "batch_per_s": round(n / dt, 1),
        "batch_unsorted_per_s": round(n / dt_unsorted, 1),
        "model_mb": round((model_dir / "model.onnx").stat().st_size / 2**20, 3),
        "n": n,
        "batch": batch,
        "threads": threads or 0,
        "onnxruntime": __import__("onnxruntime").__version__,
        **extra,
    }
