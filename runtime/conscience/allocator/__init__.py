"""The safety-budget allocator: risk scoring, budget policy, training and export.

Public entry points (imported lazily so `import conscience.allocator` stays cheap):
- budgets(prompts, config=None) -> list[int]: one safety-reasoning token budget per prompt
- score_prompts(prompts, allocator_cfg=None) -> list[dict]: the full result per prompt
- AllocatorConfig (the recipe's `allocator:` section), decide(risk, ambiguity, cfg)
"""
from __future__ import annotations

from typing import Any

from .policy import TIERS, AllocatorConfig, decide, load_config

__all__ = ["budgets", "score_prompts", "AllocatorConfig", "decide", "load_config", "TIERS"]


def score_prompts(prompts: list[str], allocator_cfg: dict | AllocatorConfig | None = None) -> list[dict[str, Any]]:
    """Score prompts with the allocator named by ``allocator_cfg`` (a recipe's ``allocator:``
    section; None = the shipped default). Returns one dict per prompt:
    {risk, ambiguity, borderline, categories: {name: p}, tier, budget, truncated, tokens}."""
    from .score import score_prompts as _impl

    return _impl(prompts, allocator_cfg)


def budgets(prompts: list[str], config: dict | AllocatorConfig | None = None) -> list[int]:
    """One budget (tokens) per prompt, in order, from the allocator named by ``config`` (a
    recipe's ``allocator:`` section; None = the shipped default)."""
    return [int(r["budget"]) for r in score_prompts(prompts, config)]
