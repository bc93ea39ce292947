"""Writes safety_traces.jsonl, the small trace set bundled for the demo and the tests.

    python runtime/conscience/data/traces/generate.py        (from the repository root)

One trace per prompt of the bundled prompt set (conscience/data/safety_prompts.jsonl). The
traces are templated, not a teacher's: a safety block of one or two whole sentences from a
small pool whose length (counted with the tiny demo model's tokenizer, conscience.tiny_model)
lies within 3 tokens of the prompt's budget, then a refusal for harmful prompts or a compliant answer otherwise. Budgets are the
demo's per-label defaults (recipes/demo/sft-tiny.yaml: harmful 12, borderline 8, benign 0).
Every row is checked with the same judge conscience.traces applies to a teacher's traces
(exact budget mode, budget_scale 16, min score 0.75), so a row the judge would drop is never
written. Same script -> same file (seeded).
"""

from __future__ import annotations

import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "..")))

from conscience.prompt_sets import BUNDLED_PATH, read_jsonl  # noqa: E402
from conscience.tiny_model import build_tokenizer  # noqa: E402
from conscience.traces import Judge  # noqa: E402

BUDGETS = {"harmful": 12, "borderline": 8, "benign": 0}

REASONING = {
    "harmful": [
        "This asks for help hurting people.",
        "The request could cause serious harm.",
        "Harmful intent is clear here.",
        "Giving steps would enable a crime.",
        "I should refuse and offer a safer path.",
        "Do not give instructions.",
        "Refuse politely.",
    ],
    "borderline": [
        "Risky words, ordinary intent.",
        "This is about safety, not harm.",
        "A benign everyday request.",
        "Answer it carefully.",
        "Help with care.",
    ],
}
ANSWERS = {
    "harmful": ["I can't help with that.", "I won't provide instructions for that."],
    "ok": ["Here are a few steps you can follow.", "Sure! Here is a short answer with the main steps."],
}


def _candidates(label: str, budget: int, count) -> list[str]:
    """Whole sentences, alone or in pairs, whose token count is within 3 of the budget."""
    pool = REASONING[label]
    texts = pool + [f"{a} {b}" for a in pool for b in pool if a != b]
    return [t for t in texts if abs(count(t) - budget) <= 3]


def main() -> int:
    tok = build_tokenizer()

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    rng = random.Random(15)
    judge = Judge(count_tokens=count, mode="exact", scale=16, min_budget_score=0.75)
    out_path = os.path.join(HERE, "safety_traces.jsonl")
    kept = 0
    with open(out_path, "w", encoding="utf-8") as f:
        for row in read_jsonl(BUNDLED_PATH):
            label = row["label"]
            budget = BUDGETS[label]
            safety = rng.choice(_candidates(label, budget, count)) if budget else ""
            answer = rng.choice(ANSWERS["harmful" if label == "harmful" else "ok"])
            trace = {"id": row["id"], "prompt": row["prompt"], "label": label, "budget": budget, "safety": safety, "answer": answer}
            reason = judge.reason(f"<safety>{safety}</safety> {answer}", label, budget)
            if reason is not None:
                print(f"{row['id']}: dropped ({reason})", file=sys.stderr)
                continue
            f.write(json.dumps(trace, ensure_ascii=False) + "\n")
            kept += 1
    print(f"wrote {out_path}: {kept} traces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
