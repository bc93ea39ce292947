"""The refusal detector on labelled completions: precision and recall.

refusal_labelled.jsonl was used while writing the patterns (in-sample);
refusal_heldout.jsonl was written afterwards and never used to tune them.
"""

import json
import os

from conscience.rewards import is_refusal

HERE = os.path.join(os.path.dirname(__file__), "data")


def _scores(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    tp = fp = fn = tn = 0
    wrong = []
    for r in rows:
        pred = is_refusal(r["completion"])
        if pred and r["refusal"]:
            tp += 1
        elif pred:
            fp += 1
            wrong.append(("false refusal", r["completion"]))
        elif r["refusal"]:
            fn += 1
            wrong.append(("missed refusal", r["completion"]))
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"{name}: n={len(rows)} precision={precision:.3f} recall={recall:.3f} wrong={wrong}")
    return len(rows), precision, recall, wrong


def test_labelled_set_precision_recall():
    n, precision, recall, wrong = _scores("refusal_labelled.jsonl")
    assert n >= 60
    assert precision >= 0.95, wrong
    assert recall >= 0.95, wrong


def test_heldout_set_precision_recall():
    n, precision, recall, wrong = _scores("refusal_heldout.jsonl")
    assert n >= 20
    assert precision >= 0.9, wrong
    assert recall >= 0.75, wrong


def test_detector_is_deterministic_and_looks_at_the_opening():
    text = "I can't help with that."
    assert all(is_refusal(text) for _ in range(5))
    # a refusal phrase deep inside a long compliant answer does not make it a refusal
    long_answer = "Here is how to bake bread. " + "Knead the dough. " * 40 + "I can't help with oven repairs though."
    assert not is_refusal(long_answer)
    assert not is_refusal("")
    assert not is_refusal(None)
