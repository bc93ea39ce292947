"""Would a language-agnostic channel fix the allocator's other-language misses? (issue #11)

    cd runtime && ../.venv/bin/python ../scripts/allocator_char_ngram.py \
        --data ../../shared/data/prompt-risk conscience/data/allocator_prompts.jsonl [--out FILE]

Most of the shipped model's missed harmful prompts on the held-out test split are in languages
its English word pieces read badly (MultiJail Korean and Italian, XSafety Russian and Hindi).
This measures one cheap fix without retraining the encoder: a logistic regression on hashed
character 2-4-grams (sublinear tf-idf, 2^20 buckets, balanced classes) fitted on the train
split, blended with the shipped model's risk by a two-weight logistic regression fitted on
validation, the tier thresholds refitted on validation as ``train`` does (evaluate.fit_policy),
then measured on test. The splits are the shipped model's (metrics.json's cap, seed and licence
rule). Prints the pooled validation and test figures of both, and per test source the harmful
prompts found (recall at risk >= 0.5) and missed, and the others flagged; ``--out`` writes
them as JSON.

It is an experiment, not a part of ``train``: docs/allocator.md, *A character n-gram channel*,
says what it found and why it is not shipped. Needs scikit-learn (in the runtime's venv, as a
dependency of sentence-transformers).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
sys.path.insert(0, str(RUNTIME))

from conscience.allocator.evaluate import budgets_for, figures, fit_policy, scores  # noqa: E402
from conscience.allocator.policy import load_config  # noqa: E402
from conscience.allocator.pool import read_all, recorded_split, splits  # noqa: E402

KEYS = ("f1", "precision", "recall", "look_risky_flagged", "ordinary_budget0", "harmful_budget0", "traffic_mix_budget_share")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main(argv: list[str] | None = None) -> int:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="the data the shipped model was trained with")
    ap.add_argument("--model", default=None, help="allocator folder (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    a = ap.parse_args(argv)

    cfg = load_config({"model": a.model} if a.model else {})
    rows = read_all([Path(p) for p in a.data], lambda s: print(s, file=sys.stderr))
    sp = splits(rows, **recorded_split(cfg.model_dir()))
    labels = {k: np.array([r["label"] for r in sp[k]]) for k in sp}
    texts = {k: [r["prompt"] for r in sp[k]] for k in sp}
    nn = {k: scores(sp[k], cfg) for k in ("validation", "test")}  # (risk, ambiguity, unfamiliar)

    hv = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**20, alternate_sign=False, norm=None)
    tfidf = TfidfTransformer(sublinear_tf=True).fit(hv.transform(texts["train"]))
    ngram = LogisticRegression(C=3.0, max_iter=2000, class_weight="balanced")
    ngram.fit(tfidf.transform(hv.transform(texts["train"])), labels["train"] == "harmful")
    z = {k: ngram.decision_function(tfidf.transform(hv.transform(texts[k]))) for k in ("validation", "test")}

    blend = LogisticRegression(C=100.0).fit(np.c_[logit(nn["validation"][0]), z["validation"]], labels["validation"] == "harmful")
    risk = {"model": {k: nn[k][0] for k in nn},
            "blend": {k: blend.predict_proba(np.c_[logit(nn[k][0]), z[k]])[:, 1] for k in nn}}

    out: dict = {"blend": {"weights": [round(float(w), 4) for w in blend.coef_[0]], "bias": round(float(blend.intercept_[0]), 4)},
                 "rows": {k: len(sp[k]) for k in sp}, "pooled": {}, "test_by_source": {}}
    for name, r in risk.items():
        amb, unf = nn["validation"][1], nn["validation"][2]
        policy, _ = fit_policy(labels["validation"], r["validation"], amb, cfg, unfamiliar=unf)
        for k in ("validation", "test"):
            b = budgets_for(r[k], nn[k][1], policy, nn[k][2])
            f = figures(labels[k], r[k], b, max(cfg.budgets().values()))
            out["pooled"][f"{name}_{k}"] = {x: f.get(x) for x in KEYS}
    src = np.array([r["source"] for r in sp["test"]])
    harmful = labels["test"] == "harmful"
    for s in sorted(set(src)):
        m = src == s
        row: dict = {"n": int(m.sum())}
        for what, sel in (("recall", m & harmful), ("flagged", m & ~harmful)):
            if sel.any():
                row[what] = [round(float((risk[n]["test"][sel] >= 0.5).mean()), 3) for n in ("model", "blend")]
        if (m & harmful).any():
            row["missed"] = [int((risk[n]["test"][m & harmful] < 0.5).sum()) for n in ("model", "blend")]
        out["test_by_source"][s] = row

    print(f"{'pooled':22s} " + " ".join(f"{k[:18]:>18s}" for k in KEYS))
    for name, f in out["pooled"].items():
        print(f"{name:22s} " + " ".join(f"{'-' if f[k] is None else f[k]:>18}" for k in KEYS))
    missed = [sum(r.get("missed", [0, 0])[i] for r in out["test_by_source"].values()) for i in (0, 1)]
    print(f"\ntest source (model -> blend)   harmful found    harmful missed   others flagged   (missed in all: {missed[0]} -> {missed[1]})")
    for s, row in out["test_by_source"].items():
        rec = "{:.2f} -> {:.2f}".format(*row["recall"]) if "recall" in row else "-"
        mis = "{} -> {}".format(*row["missed"]) if "missed" in row else "-"
        fl = "{:.2f} -> {:.2f}".format(*row["flagged"]) if "flagged" in row else "-"
        print(f"{s:30s} {rec:>14s}   {mis:>14s}   {fl:>14s}")
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
