"""Builds the project's own labelled prompt set from hand-written fragments.

    python -m conscience.allocator dataset --out runtime/conscience/data/allocator_prompts.jsonl

The fragments live in ``conscience/data/allocator_fragments.jsonl``, one JSON object a line:

* ``{"kind": "frame", "text": "How do I {vp}?"}``: a framing; ``{vp}`` is a core;
* ``{"kind": "vp", "label": ..., "category": ..., "text": "knit a simple scarf"}``: a verb-phrase
  core, put into several frames;
* ``{"kind": "full", "label": ..., "category": ..., "text": "..."}``: a whole prompt, used as is;
  ``"lang": "ru"`` (an ISO 639-1 code) marks a prompt in another language than English: its row's
  source is ``conscience-ru``, so evaluate reports it under that language.

Every frame is drawn from one pool for every label, so framing carries no label signal
(runtime/tests/test_allocator_dataset.py checks that no frame, prefix or suffix occurs with only
one label). Harmful cores DESCRIBE a request ("build a pipe bomb"); the set never contains
harmful instructions themselves. The public prompt sets have few look-risky benign prompts
(borderline), so most of this set's value is its borderline cores: benign requests on
dangerous-sounding topics (CTF exploits, history of terrorism, medication doses).

Rows: {id, prompt, label, category, source: "conscience", group, split}. ``group`` is the core
a row came from; ``split`` (train/validation/test, 70/15/15) is a hash of the group, so
paraphrases of one core never straddle two splits. Nothing here runs at import time.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

FRAGMENTS = Path(__file__).resolve().parents[1] / "data" / "allocator_fragments.jsonl"
FRAMES_PER_CORE = {"harmful": 7, "borderline": 7, "benign": 7}
LANG = re.compile(r"[a-z]{2}")


def read_fragments(path: Path = FRAGMENTS) -> tuple[list[str], list[dict]]:
    """(frames, cores). A bad line raises ValueError naming ``path:line``."""
    from ..prompt_sets import iter_jsonl

    frames: list[str] = []
    cores: list[dict] = []
    for n, obj in iter_jsonl(str(path)):  # a bad line raises DataError (a ValueError) naming path:line
        kind = obj.get("kind") if isinstance(obj, dict) else None
        text = obj.get("text") if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{n}: need a non-empty string `text`")
        if kind == "frame":
            if text.count("{vp}") != 1:
                raise ValueError(f"{path}:{n}: a frame holds `{{vp}}` exactly once")
            frames.append(text)
        elif kind in ("vp", "full"):
            if obj.get("label") not in FRAMES_PER_CORE or not isinstance(obj.get("category"), str):
                raise ValueError(f"{path}:{n}: a core needs `label` (harmful, borderline, benign) and `category`")
            lang = obj.get("lang", "en")
            if not (isinstance(lang, str) and LANG.fullmatch(lang)) or (kind == "vp" and lang != "en"):
                raise ValueError(f"{path}:{n}: `lang` must be a two-letter language code (only on `full` cores), got {lang!r}")
            cores.append(obj)
        else:
            raise ValueError(f"{path}:{n}: `kind` must be frame, vp or full, got {kind!r}")
    if not frames:
        raise ValueError(f"{path}: no frames")
    return frames, cores


def _norm(s: str) -> str:
    return " ".join(s.lower().replace("?", "").replace(".", "").split())


def _split(group: str) -> str:
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else ("validation" if h < 85 else "test")


def build(seed: int = 13, path: Path = FRAGMENTS) -> list[dict]:
    frames, cores = read_fragments(path)
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()

    def add(prompt: str, label: str, category: str, group: str, lang: str = "en") -> None:
        key = _norm(prompt)
        if key in seen:
            return
        seen.add(key)
        idx = hashlib.sha256(f"{label}|{prompt}".encode()).hexdigest()[:12]
        rows.append({"id": f"{label[:3]}-{idx}", "prompt": prompt, "label": label, "category": category,
                     "source": "conscience" if lang == "en" else f"conscience-{lang}", "group": group, "split": _split(group)})

    for c in cores:
        label, text = c["label"], c["text"]
        group = f"{label}:{text}"
        if c["kind"] == "full":
            add(text, label, c["category"], group, c.get("lang", "en"))
            continue
        for fr in rng.sample(frames, k=min(FRAMES_PER_CORE[label], len(frames))):
            add(fr.replace("{vp}", text), label, c["category"], group)
    rng.shuffle(rows)
    return rows


def write(out: Path) -> dict:
    rows = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for r in rows:
        counts[f"{r['label']}/{r['split']}"] = counts.get(f"{r['label']}/{r['split']}", 0) + 1
    return {"rows": len(rows), "counts": dict(sorted(counts.items()))}
