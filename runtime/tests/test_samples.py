"""`samples` rows: the safety block and the answer split as the rewards parse them, the block's
tokens counted with the trainer's counter, and every text clipped so a step stays bounded."""

from conscience.train import SAMPLE_TEXT_MAX, SampleRecorder


class _Safety:
    open_tag = "<safety>"
    close_tag = "</safety>"


def _words(text: str) -> int:
    return len(text.split())


def test_rows_split_safety_block_and_answer_and_count_its_tokens():
    rec = SampleRecorder(_Safety(), _words)
    completions = ["<safety>low risk, plain chemistry</safety> Take them to a collection point.", "Sure, here it is.", "<safety>unclosed"]
    rec.record(0, "refusal", ["p0", "p1", "p2"], completions, {"label": ["benign", "harmful", "borderline"], "budget": [64, 0, 8]}, [0.0, 1.0, 0.5])
    rows, metrics = rec.take(4)
    assert [(r["safety"], r["answer"], r["safety_tokens"]) for r in rows] == [
        ("low risk, plain chemistry", "Take them to a collection point.", 4),
        (None, "Sure, here it is.", 0),
        ("unclosed", "", 1),
    ]
    assert [r["completion"] for r in rows] == completions
    assert metrics["safety/tokens_mean"] == 5 / 3


def test_each_text_is_clipped_so_a_step_stays_bounded_on_disk():
    rec = SampleRecorder(_Safety(), _words)
    long = "<safety>" + "w " * 10_000 + "</safety>" + "a" * 10_000
    rec.record(0, "refusal", ["q" * 10_000], [long], {}, [1.0])
    (row,), _ = rec.take(4)
    for key in ("prompt", "completion", "safety", "answer"):
        assert len(row[key]) == SAMPLE_TEXT_MAX + 1 and row[key].endswith("…"), key
    assert row["safety_tokens"] == 10_000, "tokens are counted on the whole block, before clipping"


def test_safety_means_cover_every_batch_since_the_last_log_not_only_the_kept_ones():
    # 8 generation batches between two logging steps (logging_steps > 4): block lengths 1..8.
    # Only the last 4 batches are kept whole (for sample rows); the means still cover all 8.
    rec = SampleRecorder(_Safety(), _words)
    for n in range(1, 9):
        rec.record(0, "refusal", ["p"], ["<safety>" + "w " * n + "</safety> ok"], {"budget": [4]}, [1.0])
    rows, metrics = rec.take(4)
    assert metrics["safety/tokens_mean"] == 4.5  # (1 + ... + 8) / 8
    assert metrics["safety/budget_abs_err"] == sum(abs(n - 4) for n in range(1, 9)) / 8
    assert [r["safety_tokens"] for r in rows] == [8]  # rows: the last batch
    _, again = rec.take(4)
    assert again == {}  # nothing carried over into the next interval


def test_reward_calls_made_while_evaluating_are_not_recorded():
    # TRL calls the rewards on the eval split too (model.eval()): those completions are not
    # training samples (test_train_e2e.py runs it for real with eval_strategy: steps)
    from conscience.train import _recording

    rec = SampleRecorder(_Safety(), _words)
    mode = {"training": False}

    def refusal_reward(prompts=None, completions=(), **kwargs):
        return [1.0] * len(completions)

    reward = _recording(refusal_reward, 0, rec, lambda: mode["training"])
    assert reward(prompts=["eval"], completions=["<safety>e</safety> x"], budget=[12]) == [1.0]
    assert rec.take(4) == ([], {})
    mode["training"] = True
    reward(prompts=["train"], completions=["<safety></safety> y"], budget=[0])
    rows, metrics = rec.take(4)
    assert [r["prompt"] for r in rows] == ["train"] and metrics["safety/budget_mean"] == 0.0
    assert reward.__name__ == "refusal_reward"
