"""Labelled prompts for training and evaluating the allocator, from any number of JSONL files.

Each line is ``{prompt, label: harmful|benign|borderline, id?, source?, category?, split?}``.
The files are read where they lie (a path on the command line: the public prompt sets in
``../shared/data/prompt-risk/`` or a user's own files); nothing is copied into the repository.

Four decisions are made here, each by a table or a rule a reader can check:

* **Licence** (:data:`SOURCES`): the shipped model is trained only on sources whose licence
  permits it in this MIT project. Non-commercial and research-only sources, and sources with
  no licence stated, are evaluation only: never trained or tuned on, whatever their role.
  Attribution (CC BY) and share-alike (CC BY-SA) sources may be trained on; models/allocator/
  SOURCES.md credits them. A source not in the table (a user's own file) is the user's.
* **Split, by source**: every known source has one role (``train``, ``validation`` or
  ``test``), so the validation and test figures measure whole sources the model never saw.
  The project's own set (``conscience/data/allocator_prompts.jsonl``) carries a ``split``
  field per row (hashed by the hand-written core, so the paraphrases of one core never
  straddle two splits). Other rows without a ``split`` are split 70/15/15 by a hash of their
  source name, so a user's sources are held out whole too.
* **Cleaning**: categories whose label the source's own notes call unreliable are dropped
  (:data:`DROP_CATEGORIES`), near-duplicate templates are collapsed within a source
  (:func:`dedupe`), and each source is capped at ``per_source`` rows per label by a seeded
  sample, so GSM8K or NQ cannot dominate the benign label.
* **Bad rows** (bad JSON, missing fields, an unknown label, lone surrogates, a line over the
  cap, nesting too deep) are reported as ``FILE:LINE: why`` and skipped: one bad row never
  stops a training or an evaluation run.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

LABELS = ("benign", "borderline", "harmful")


@dataclass(frozen=True)
class Source:
    licence: str
    trainable: bool  # the licence permits training the shipped (MIT) model on it
    role: str  # train | validation | test


# Source name (as in the rows' `source` field, without a `-<language>` suffix where the
# table says `*`) -> licence, whether the shipped model may learn from it, and its role.
# Licences are the ones ../shared/data/prompt-risk/SOURCES.md records.
SOURCES: dict[str, Source] = {
    # harmful
    "simplesafetytests": Source("CC BY 4.0", True, "test"),
    "do-not-answer": Source("CC BY-NC-SA 4.0 (non-commercial)", False, "test"),
    "jbllms-forbidden-question": Source("MIT", True, "train"),
    "jbllms-jailbreak-template": Source("MIT", True, "train"),
    "maliciousinstruct": Source("none stated", False, "test"),
    "harmfulq": Source("MIT", True, "validation"),
    "catqa-*": Source("Apache-2.0", True, "train"),
    "harmfulqa": Source("Apache-2.0", True, "train"),
    # MultiJail: the languages that have ordinary (benign) training prompts too train; Italian,
    # Korean and Javanese have none, so learning them would teach "this language is harmful":
    # they stay held out and measure harmful recall in languages the model never saw.
    **{f"multijail-{lang}": Source("MIT", True, "test") for lang in ("it", "ko", "jv")},
    "multijail-*": Source("MIT", True, "train"),
    "ailuminate-*": Source("CC BY 4.0", True, "train"),
    "gptfuzz-question": Source("MIT", True, "validation"),
    "gptfuzz-template": Source("MIT", True, "train"),
    "latent-jailbreak": Source("MIT", True, "train"),
    "xsafety-goal-hijacking-*": Source("Apache-2.0, README: research use only", False, "test"),
    "safety-tuned-llamas": Source("CC BY-NC 4.0 (non-commercial)", False, "test"),
    # borderline and contrast benign
    "oktest": Source("none stated", False, "test"),
    "coconot-contrast": Source("MIT", True, "train"),
    "coconot-original": Source("MIT", True, "validation"),
    # benign
    "self-instruct-seed": Source("Apache-2.0", True, "train"),
    "self-instruct-user": Source("Apache-2.0", True, "validation"),
    "gpteacher-codegen": Source("MIT", True, "train"),
    "gpteacher-roleplay": Source("MIT", True, "train"),
    "gsm8k": Source("MIT", True, "train"),
    "arena-hard": Source("Apache-2.0", True, "train"),
    "nq-open": Source("CC BY-SA 3.0", True, "test"),
    "medicationqa": Source("none stated", False, "test"),
    "dolly-refusalfiltered": Source("CC BY-SA 3.0", True, "train"),
    "mgsm-*": Source("CC BY 4.0", True, "train"),
    # XQuAD by language: the languages harmful training prompts come in train (so a language is
    # no sign of harm), one validates, the rest (en, el, ro, tr) stay held out
    **{f"xquad-{lang}": Source("CC BY-SA 4.0", True, "train") for lang in ("ar", "de", "es", "hi", "th", "vi", "zh")},
    "xquad-ru": Source("CC BY-SA 4.0", True, "validation"),
    "xquad-*": Source("CC BY-SA 4.0", True, "test"),
    "belle-*": Source("research only (non-commercial)", False, "test"),  # belle-zh: Chinese
    # the project's own prompts (English, and `conscience-<lang>`): rows carry their own split
    "conscience": Source("MIT (this project)", True, "own"),
    "conscience-*": Source("MIT (this project)", True, "own"),
}

# Categories whose `harmful` label the source's notes call unreliable (SOURCES.md): the risk is
# in the answer or in a high-risk *use*, and the request itself reads as benign.
DROP_CATEGORIES: dict[str, tuple[str, ...]] = {
    "do-not-answer": ("Human-Chatbot Interaction Harms", "Misinformation Harms",
                      "Information Hazards / Risks from leaking or inferring sensitive information (organization/gov)"),
    "jbllms-forbidden-question": ("Legal Opinion", "Financial Advice", "Health Consultation", "Gov Decision",
                                  "Political Lobbying", "Economic Harm"),
}

MAX_LINE_BYTES = 1 << 16  # a prompt row; the pool drops prompts over 4,000 characters
MAX_DEPTH = 16


def source_info(source: str) -> Source | None:
    """The table entry for a row's ``source`` (``multijail-zh`` matches ``multijail-*``)."""
    if source in SOURCES:
        return SOURCES[source]
    for key, info in SOURCES.items():
        if key.endswith("-*") and source.startswith(key[:-1]):
            return info
    return None


def language(source: str) -> str | None:
    """The language suffix of a multilingual source (``multijail-zh`` -> ``zh``), else None."""
    for key in SOURCES:
        if key.endswith("-*") and source.startswith(key[:-1]):
            return source[len(key) - 1:]
    return None


def _hash_split(key: str) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else ("validation" if h < 85 else "test")


def split_of(row: dict) -> str:
    """train | validation | test for one row (see the module doc)."""
    info = source_info(row["source"])
    if info is not None and info.role != "own":
        return info.role
    if row.get("split") in ("train", "validation", "test"):
        return row["split"]
    return _hash_split(row["source"])


def trainable(row: dict) -> bool:
    info = source_info(row["source"])
    return info is None or info.trainable


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_row(obj, where: str, default_source: str) -> dict:
    """A normalised row or ValueError("why")."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("`prompt` must be a non-empty string")
    if _SURROGATE.search(prompt):
        raise ValueError("`prompt` holds a lone surrogate (\\ud800-\\udfff), not text")
    label = obj.get("label")
    if label not in LABELS:
        raise ValueError(f"`label` must be one of {', '.join(LABELS)}, got {label!r}")
    source = obj.get("source", default_source)
    if not isinstance(source, str) or not source:
        raise ValueError("`source` must be a non-empty string")
    if _SURROGATE.search(source):
        raise ValueError("`source` holds a lone surrogate (\\ud800-\\udfff), not text")
    category = obj.get("category") or ""
    if not isinstance(category, str):
        raise ValueError("`category` must be a string")
    if _SURROGATE.search(category):
        raise ValueError("`category` holds a lone surrogate (\\ud800-\\udfff), not text")
    split = obj.get("split")
    if split is not None and split not in ("train", "validation", "test"):
        raise ValueError(f"`split` must be train, validation or test, got {split!r}")
    rid = obj.get("id", where)
    return {"id": str(rid), "prompt": prompt, "label": label, "source": source, "category": category,
            "split": split}


def read_rows(path: Path, warn: Callable[[str], None]) -> list[dict]:
    """Rows of one JSONL file; a bad row is reported to ``warn`` as ``FILE:LINE: why`` and
    skipped. Lines are read with a length cap, so one huge line costs at most the cap."""
    from ..prompt_sets import iter_jsonl

    rows: list[dict] = []
    default_source = "conscience" if path.name == "allocator_prompts.jsonl" else path.stem.replace("_", "-")
    for lineno, obj in iter_jsonl(str(path), on_error=lambda msg: warn(f"{msg}; skipped"),
                                  max_line_bytes=MAX_LINE_BYTES, max_depth=MAX_DEPTH):
        where = f"{path}:{lineno}"
        try:
            rows.append(check_row(obj, where, default_source))
        except (ValueError, RecursionError) as e:
            warn(f"{where}: {e}; skipped")
    return rows


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files named, and the top-level ``*.jsonl`` of folders named (``noisy/`` is not read)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.glob("*.jsonl") if q.is_file()))
        elif p.exists():
            if not p.is_file():
                raise ValueError(f"{p}: not a regular file")
            out.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    return out


def read_all(paths: Iterable[Path], warn: Callable[[str], None]) -> list[dict]:
    rows: list[dict] = []
    for p in expand(paths):
        rows.extend(read_rows(p, warn))
    return rows


_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


_MH_A = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646C, 0xFD7046C5, 0xB55A4F09], dtype=np.uint64)
_MH_B = np.array([0x7F4A7C15, 0x2545F491, 0x61C88647, 0x4F6CDD1D, 0x1B873593, 0xCC9E2D51, 0xE6546B64, 0x38B34AE5], dtype=np.uint64)


def _minhash_keys(words: set[str], crc: dict[str, int], bands: int = 4, rows: int = 2) -> list[tuple]:
    """MinHash band keys (deterministic across runs): two word sets with Jaccard J share at least
    one key with probability 1 - (1 - J**rows)**bands (0.98 at J = 0.8)."""
    h = np.array([crc.setdefault(w, zlib.crc32(w.encode())) for w in words], dtype=np.uint64)
    mins = ((h[None, :] * _MH_A[:, None] + _MH_B[:, None]) & np.uint64(0xFFFFFFFF)).min(axis=1)
    return [(b, *mins[b * rows:(b + 1) * rows].tolist()) for b in range(bands)]


def dedupe(rows: list[dict], threshold: float = 0.8) -> list[dict]:
    """Collapse near-duplicates within each (source, label): exact matches after lower-casing and
    collapsing whitespace, and word-set Jaccard >= ``threshold`` between prompts of 4 or more
    words that share a MinHash band (compared with at most the 16 latest kept prompts of that band,
    so the cost stays linear). The first row wins; the order is kept."""
    out: list[dict] = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["label"]), []).append(r)
    keep: set[int] = set()
    crc: dict[str, int] = {}
    for rs in groups.values():
        seen_exact: set[str] = set()
        buckets: dict[tuple, list[set[str]]] = {}
        for r in rs:
            exact = " ".join(r["prompt"].lower().split())
            if exact in seen_exact:
                continue
            ws = set(_words(r["prompt"]))
            keys = _minhash_keys(ws, crc) if len(ws) >= 4 else []
            dup = False
            for key in keys:
                for other in buckets.get(key, ()):
                    inter = len(ws & other)
                    if inter / (len(ws) + len(other) - inter) >= threshold:
                        dup = True
                        break
                if dup:
                    break
            if dup:
                continue
            seen_exact.add(exact)
            for key in keys:
                lst = buckets.setdefault(key, [])
                lst.append(ws)
                if len(lst) > 16:
                    del lst[0]
            keep.add(id(r))
    return [r for r in rows if id(r) in keep]


def clean(rows: list[dict]) -> list[dict]:
    """Drop the categories listed in DROP_CATEGORIES."""
    out = []
    for r in rows:
        base = r["source"]
        drops = DROP_CATEGORIES.get(base, ())
        if r["label"] == "harmful" and any(r["category"].startswith(d) for d in drops):
            continue
        out.append(r)
    return out


def cap(rows: list[dict], per_source: int, seed: int = 0) -> list[dict]:
    """At most ``per_source`` rows per (source, label), a seeded sample; order kept."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["source"], r["label"]), []).append(i)
    keep: set[int] = set()
    for key in sorted(groups):
        idx = groups[key]
        info = source_info(key[0])
        if (info is not None and info.role == "own") or len(idx) <= per_source:  # the project's own: never capped
            keep.update(idx)
        else:
            keep.update(random.Random(f"{seed}:{key[0]}:{key[1]}").sample(idx, per_source))
    return [r for i, r in enumerate(rows) if i in keep]


def recorded_split(model_dir: Path) -> dict[str, Any]:
    """The split settings a model folder was trained with ({per_source, seed, licensed_only}, as
    ``splits`` takes them), from its metrics.json; the defaults where it records none. The
    test split does not depend on them (it is never capped); train and validation do."""
    try:
        metrics = json.loads((Path(model_dir) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    return split_settings(metrics)


def split_settings(metrics: Any) -> dict[str, Any]:
    """``recorded_split`` of a metrics.json already read."""
    out: dict[str, Any] = {"per_source": 600, "seed": 0, "licensed_only": True}
    fit = metrics.get("fit") if isinstance(metrics, dict) else None
    if isinstance(fit, dict):
        for k in ("per_source", "seed"):
            if isinstance(fit.get(k), int) and not isinstance(fit.get(k), bool):
                out[k] = fit[k]
    if isinstance(metrics, dict) and isinstance(metrics.get("licensed_only"), bool):
        out["licensed_only"] = metrics["licensed_only"]
    return out


def prepare(rows: list[dict]) -> list[dict]:
    """Steps 3 and 4 of ``splits``: drop the noisy categories and collapse near-duplicates. The
    result does not depend on the cap or the seed, so a caller that splits the same rows several
    ways (scripts/gpu/allocator_sweep.py, one split per config) prepares them once."""
    return dedupe(clean(rows))


def splits(rows: list[dict], *, licensed_only: bool = True, per_source: int = 600, seed: int = 0,
           warn: Callable[[str], None] = lambda s: None, prepared: bool = False) -> dict[str, list[dict]]:
    """Clean, dedupe, split by source and cap. ``licensed_only`` keeps sources the shipped
    model may not learn from out of train and validation (they stay in test). With
    ``prepared`` the rows are already ``prepare``'s output."""
    rows = rows if prepared else prepare(rows)
    out: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for r in rows:
        s = split_of(r)
        if s != "test" and licensed_only and not trainable(r):
            continue
        out[s].append(r)
    out["train"] = cap(out["train"], per_source, seed)
    out["validation"] = cap(out["validation"], per_source, seed)
    return out


def sources_used(split_rows: dict[str, list[dict]]) -> dict[str, dict]:
    """{source: {licence, split, rows: {label: n}}} for metrics.json / SOURCES.md."""
    out: dict[str, dict] = {}
    for s, rs in split_rows.items():
        for r in rs:
            info = source_info(r["source"])
            e = out.setdefault(r["source"], {"licence": info.licence if info else "user's own",
                                             "split": s, "rows": {}})
            e["rows"][r["label"]] = e["rows"].get(r["label"], 0) + 1
    return dict(sorted(out.items()))


def sources_markdown(used: dict[str, dict], command: str) -> str:
    """models/allocator/SOURCES.md: which sources the model learned from, which were held out."""
    lines = ["# Sources of this allocator", "",
             "Written by `python -m conscience.allocator train` (conscience/allocator/pool.py). The prompts",
             "themselves are not in the repository; they were read from the path on the command line:", "",
             f"    {command}", "",
             "Licences as recorded in `../shared/data/prompt-risk/SOURCES.md`. Train rows are what the",
             "model learned from (after cleaning, near-duplicate collapse and the per-source cap);",
             "validation rows fitted the temperature and the budget thresholds; test rows were only measured.", "",
             "| source | licence | split | benign | borderline | harmful |", "|---|---|---|---|---|---|"]
    order = {"train": 0, "validation": 1, "test": 2}
    for src, e in sorted(used.items(), key=lambda kv: (order[kv[1]["split"]], kv[0])):
        r = e["rows"]
        lines.append(f"| {src} | {e['licence']} | {e['split']} | {r.get('benign', '')} | {r.get('borderline', '')} | {r.get('harmful', '')} |")
    return "\n".join(lines) + "\n"
