"""The safety-budget allocator: risk scoring, budget policy, training and export.

Public entry points (imported lazily so `import conscience.allocator` stays cheap):
- score_prompts(prompts, allocator_cfg=None) -> list[dict]
- AllocatorConfig (the recipe's `allocator:` section), decide(risk, ambiguity, cfg)
"""
from __future__ import annotations

from typing import Any

from .policy import TIERS, AllocatorConfig, decide, load_config

__all__ = ["score_prompts", "AllocatorConfig", "decide", "load_config", "TIERS"]


def score_prompts(prompts: list[str], allocator_cfg: dict | AllocatorConfig | None = None) -> list[dict[str, Any]]:
    """Score prompts with the allocator named by ``allocator_cfg`` (a recipe's ``allocator:``
    section; None = the shipped default). Returns one dict per prompt:
    {risk, ambiguity, borderline, categories: {name: p}, tier, budget, truncated, tokens}."""
    from .score import score_prompts as _impl

    return _impl(prompts, allocator_cfg)
