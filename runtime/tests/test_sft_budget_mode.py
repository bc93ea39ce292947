"""#15.4: the budget instruction's wording and the default `budget_mode` agree.

The default wording asks for a block of *about* N tokens and the default mode, `exact`,
rewards closeness to N from both sides; `max` is the mode for an "at most N" wording. Each
test ranks completions the way a reader of the instruction would and checks the reward
orders them the same way.
"""

from __future__ import annotations

from conscience.recipe import SafetyConfig
from conscience.rewards import safety_budget_reward
from conscience.template import PromptTemplate


def _block(n: int) -> str:
    return "<safety>" + " ".join(["w"] * n) + "</safety> Here is my answer."


def _scores(lengths, budget, mode, scale=16):
    return safety_budget_reward([_block(n) for n in lengths], budget=[budget] * len(lengths), mode=mode, scale=scale)


def test_default_instruction_says_about_and_default_mode_is_exact():
    safety = SafetyConfig()
    text = PromptTemplate.from_recipe(safety).instruction(24)
    assert "about 24 tokens" in text and "at most" not in text
    assert safety.budget_mode == "exact"


def test_exact_mode_ranks_by_distance_to_the_budget_from_both_sides():
    # "about 24 tokens": 24 is best; 20 and 28 are equally good; 12 and 36 worse; 0 and 60 worst.
    s = dict(zip([24, 20, 28, 12, 36, 0, 60], _scores([24, 20, 28, 12, 36, 0, 60], 24, "exact")))
    assert s[24] == 1.0
    assert s[24] > s[20] == s[28] > s[12] == s[36] > s[0]
    assert s[60] == 0.0 and s[0] == 0.0
    # A block shorter than asked is penalised in exact mode (the instruction asked for about 24).
    assert s[12] < s[24]


def test_max_mode_ranks_every_block_within_the_budget_first_then_by_overshoot():
    # "at most 24 tokens": anything up to 24 is fully right; beyond it, the longer the worse.
    s = dict(zip([0, 12, 24, 28, 36, 60], _scores([0, 12, 24, 28, 36, 60], 24, "max")))
    assert s[0] == s[12] == s[24] == 1.0
    assert s[24] > s[28] > s[36] > s[60] == 0.0


def test_zero_budget_asks_for_an_empty_block_in_both_modes():
    # The zero-budget wording asks for an empty block: empty is best, longer is worse, in both modes.
    assert "empty safety block" in PromptTemplate().instruction(0)
    for mode in ("exact", "max"):
        s = _scores([0, 4, 12, 40], 0, mode)
        assert s[0] == 1.0 and s[0] > s[1] > s[2] > s[3]


def test_no_block_or_unclosed_block_never_beats_a_block_of_any_length():
    for mode in ("exact", "max"):
        worst_block = min(_scores([0, 10, 30], 10, mode))
        others = safety_budget_reward(["Just an answer.", "<safety>never closed"], budget=[10, 10], mode=mode)
        assert max(others) <= worst_block and max(others) == 0.0
