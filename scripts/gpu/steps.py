"""Step rates from the times at which a trainer logged its steps (a callback's or the events'
timestamps), after the warm-up steps: one place for sft_bench.py and trl1_grpo.py."""

from __future__ import annotations

import statistics


def steps_per_s(times: list[float], warmup: int) -> float:
    """Steps per second over the logged steps after `warmup`."""
    t = times[warmup:]
    if len(t) < 2:
        raise SystemExit(f"too few steps after warm-up ({len(times)} logged)")
    return (len(t) - 1) / (t[-1] - t[0])


def median_step_s(times: list[float], warmup: int) -> float:
    """The median interval between logged steps after warm-up: one slow step (a GC pause, a
    host hiccup) moves the mean of a short run a lot and this hardly at all."""
    t = times[warmup:]
    return statistics.median(b - a for a, b in zip(t, t[1:]))
