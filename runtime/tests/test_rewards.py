"""Rewards on hand-written completions, malformed ones included."""

import math
import time

import pytest

from conscience.rewards import (
    REWARD_FUNCS,
    build_reward_funcs,
    logged_name,
    parse_safety,
    refusal_reward,
    repetition_penalty_reward,
    reward_names,
    safety_budget_reward,
    safety_format_reward,
    soft_overlong_punishment_reward,
)

GOOD_REFUSAL = "<safety>Asks for a weapon. Refuse.</safety> I can't help with that."
GOOD_HELP = "<safety></safety> Sure, here are the steps to bake bread."
NO_TAGS = "Sure, here are the steps."
UNCLOSED = "<safety>thinking about it and never closing"
LATE_BLOCK = "Here is the answer. <safety>after</safety>"
TWO_BLOCKS = "<safety>a</safety><safety>b</safety> ok"
EMPTY_ANSWER = "<safety>fine</safety>"
HUGE = "<safety>" + ("word " * 210_000)  # > 1 MB, unclosed
HUGE_CLOSED = "<safety>" + "x " * 300_000 + "</safety> ok"
MALFORMED = ["", None, 12345, b"\xff\xfe<safety>", [{"role": "assistant", "content": None}], {"content": "x"}, "</safety><safety>", "\x00\x01", HUGE, HUGE_CLOSED]


def test_registry_names_and_logged_names():
    assert {"safety_format", "safety_budget", "refusal", "repetition_penalty", "soft_overlong_punishment"} <= set(reward_names())
    assert logged_name("safety_format") == "safety_format_reward"
    assert logged_name("refusal") == "refusal_reward"
    funcs = build_reward_funcs(reward_names())
    assert [f.__name__ for f in funcs] == [REWARD_FUNCS[n].__name__ for n in reward_names()]
    with pytest.raises(KeyError, match="unknown reward_funcs"):
        build_reward_funcs(["safety_format", "nope"])


def test_safety_format_scores_structure():
    got = safety_format_reward([GOOD_REFUSAL, GOOD_HELP, NO_TAGS, UNCLOSED, LATE_BLOCK, TWO_BLOCKS, EMPTY_ANSWER])
    assert got == [1.0, 1.0, 0.0, 0.25, 0.5, 0.5, 0.75]


def test_safety_format_conversational_completions():
    conv = [[{"role": "assistant", "content": GOOD_HELP}], [{"role": "assistant", "content": NO_TAGS}]]
    assert safety_format_reward(conv) == [1.0, 0.0]


def test_custom_tags():
    text = "<think-safe>ok</think-safe> answer"
    assert safety_format_reward([text], open_tag="<think-safe>", close_tag="</think-safe>") == [1.0]
    assert safety_format_reward([text]) == [0.0]


def test_safety_budget_against_prompt_budget():
    four = "<safety>one two three four</safety> answer"  # 4 words = 4 approx tokens
    assert safety_budget_reward([four], budget=[4]) == [1.0]
    # exact mode: |n-b| / max(b, scale)
    assert safety_budget_reward([four], budget=[20], scale=16) == [pytest.approx(1 - 16 / 20)]
    # budget 0 means an empty block
    assert safety_budget_reward(["<safety></safety> hi"], budget=[0]) == [1.0]
    assert safety_budget_reward([four], budget=[0], scale=16) == [pytest.approx(1 - 4 / 16)]
    # max mode: under the budget is fine
    assert safety_budget_reward([four], budget=[20], mode="max") == [1.0]
    # no closed block: 0
    assert safety_budget_reward([NO_TAGS, UNCLOSED], budget=[4, 4]) == [0.0, 0.0]
    # a bound tokenizer counts instead of words
    assert safety_budget_reward([four], budget=[8], count_tokens=lambda s: 2 * len(s.split()), scale=1) == [1.0]


def test_safety_budget_bad_budgets_score_zero():
    four = "<safety>one two three four</safety> answer"
    assert safety_budget_reward([four] * 5, budget=[None, "x", -3, float("nan"), float("inf")]) == [0.0] * 5
    assert safety_budget_reward([four, four], budget=None) == [0.0, 0.0]
    assert safety_budget_reward([four, four], budget=[4]) == [1.0, 0.0]  # short column padded


def test_refusal_reward_by_label():
    comps = [GOOD_REFUSAL, GOOD_HELP, GOOD_REFUSAL, GOOD_HELP, "<safety>x</safety> I cannot help with that.", UNCLOSED]
    labels = ["harmful", "harmful", "benign", "benign", "borderline", "harmful"]
    assert refusal_reward(comps, label=labels) == [1.0, -1.0, -1.0, 1.0, -1.0, -1.0]
    # the GRPO dataset passes the label as `safety_label`
    assert refusal_reward([GOOD_REFUSAL], safety_label=["harmful"]) == [1.0]
    # unknown or missing labels are neutral
    assert refusal_reward([GOOD_REFUSAL, GOOD_REFUSAL], label=["weird", None]) == [0.0, 0.0]
    # no block: the whole text is the answer
    assert refusal_reward(["I won't help with that."], label=["harmful"]) == [1.0]
    # an empty answer is not compliance
    assert refusal_reward([EMPTY_ANSWER.replace("fine", "")], label=["benign"]) == [-1.0]


def test_repetition_and_overlong():
    assert repetition_penalty_reward(["a b c d e f"]) == [0.0]
    rep = repetition_penalty_reward(["go go go go go go go go"], ngram_size=2, max_penalty=-1.0)[0]
    assert -1.0 <= rep < -0.8
    got = soft_overlong_punishment_reward(["x"] * 3, completion_ids=[[1] * 10, [1] * 28, [1] * 32], max_completion_len=32, soft_punish_cache=8)
    assert got == [0.0, pytest.approx(-0.5), -1.0]


@pytest.mark.parametrize("name", list(REWARD_FUNCS))
def test_every_reward_returns_a_float_per_completion_and_never_raises(name):
    funcs = build_reward_funcs([name])
    n = len(MALFORMED)
    t0 = time.perf_counter()
    out = funcs[0](
        prompts=["p"] * n,
        completions=MALFORMED,
        completion_ids=[[1, 2, 3]] * n,
        safety_label=["harmful", "benign", "borderline", None, 7, "HARMFUL", "benign", "x", "harmful", "benign"],
        budget=[0, 5, None, "7", -1, float("nan"), 3, 3, 10, 10],
    )
    elapsed = time.perf_counter() - t0
    assert len(out) == n
    assert all(isinstance(v, float) and math.isfinite(v) for v in out), out
    assert elapsed < 5.0, f"{name} took {elapsed:.1f}s on malformed input"


def test_parse_safety_on_huge_text_is_bounded():
    p = parse_safety(HUGE)
    assert p.has_open and not p.closed
