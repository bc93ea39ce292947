"""Prompts written in a script the allocator never learned both labels in.

A model that saw, say, Devanagari only in ordinary questions (MGSM, XQuAD) learns "this script
is benign", and scores a harmful Hindi request as risk 0 and budget 0. It cannot know better:
it was never shown the difference there. Such prompts are *unfamiliar*, and the policy gives
them at least the `standard` tier (docs/allocator.md, "Budget policy", row 4) instead of
trusting a score the model is in no position to give.

Which scripts are familiar is decided by `train` (and `fit-policy`) from the training split:
a script is familiar when at least ``MIN_ROWS`` harmful and ``MIN_ROWS`` benign training
prompts are written mostly in it, or, in a smaller training set, at least ``MIN_SHARE_OF_LABEL``
of that label's prompts (:func:`census`). The result is written to allocator.json
under ``"scripts"``, with the code-point ranges, so the TypeScript side
(extension/src/core/allocator/unfamiliar.ts) reads the same table and decides the same way.
A model folder without ``"scripts"`` has no unfamiliar prompts.

A prompt is unfamiliar when, among its first ``scan_chars`` code points, the ones that fall in
a range of the table (letters of a known script: ASCII digits, punctuation and spaces are in no
range) number at least one, and those of scripts not in ``familiar`` make up at least
``min_share`` of them.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from typing import Any, Iterable, Mapping

# (first, last, script): Unicode blocks by the script that writes them. Latin first.
RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x005A, "latin"), (0x0061, 0x007A, "latin"), (0x00C0, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0980, 0x09FF, "bengali"), (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"), (0x0B00, 0x0B7F, "oriya"), (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"), (0x0C80, 0x0CFF, "kannada"), (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"), (0x0E00, 0x0E7F, "thai"), (0x0E80, 0x0EFF, "lao"),
    (0x0F00, 0x0FFF, "tibetan"), (0x1000, 0x109F, "myanmar"), (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"), (0x3130, 0x318F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x1200, 0x137F, "ethiopic"), (0x1780, 0x17FF, "khmer"),
    (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"), (0xFF66, 0xFF9F, "kana"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"), (0x20000, 0x2FFFF, "han"),
)
MIN_ROWS = 100
MIN_SHARE_OF_LABEL = 0.1  # a small set (a user's own 60 rows) still makes its main script familiar
MIN_SHARE = 0.2
GATE_MIN_HARMFUL = 20  # validation harmful prompts a script needs before its recall is read
GATE_MIN_RECALL = 0.5
GATE_Z = 1.645  # one-sided 95 %: the recall's Wilson lower bound must reach GATE_MIN_RECALL
SCAN_CHARS = 2016  # the tokenizer's first window (126 content tokens x 16 characters)


class ScriptTable:
    """allocator.json's ``"scripts"``, ready to classify text."""

    def __init__(self, ranges: Iterable[Iterable[Any]], familiar: Iterable[str], min_share: float = MIN_SHARE,
                 scan_chars: int = SCAN_CHARS) -> None:
        rs = sorted((int(a), int(b), str(s)) for a, b, s in ranges)
        self.starts = [a for a, _, _ in rs]
        self.ranges = rs
        self.familiar = frozenset(familiar)
        self.min_share = float(min_share)
        self.scan_chars = int(scan_chars)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "ScriptTable | None":
        """The table of an allocator.json (None: the model has no ``"scripts"``). Raises
        ValueError naming what is wrong."""
        s = meta.get("scripts")
        if s is None:
            return None
        # the same checks as unfamiliar.ts's parseScripts, so both sides refuse the same folders
        if not isinstance(s, dict):
            raise ValueError("scripts must be an object")
        familiar, min_share, scan = s.get("familiar"), s.get("min_share", MIN_SHARE), s.get("scan_chars", SCAN_CHARS)
        if not isinstance(familiar, list) or not all(isinstance(x, str) for x in familiar):
            raise ValueError("scripts: familiar must be a list of script names")
        if isinstance(min_share, bool) or not isinstance(min_share, (int, float)) or not 0 <= min_share <= 1:
            raise ValueError(f"scripts: min_share must be a number in [0, 1], got {min_share!r}")
        if isinstance(scan, bool) or not isinstance(scan, int) or scan < 0:
            raise ValueError(f"scripts: scan_chars must be a non-negative integer, got {scan!r}")
        try:
            return cls(s["ranges"], familiar, min_share, scan)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"scripts: {e!r}") from None

    def script(self, ch: str) -> str | None:
        o = ord(ch)
        i = bisect.bisect_right(self.starts, o) - 1
        if i >= 0 and o <= self.ranges[i][1]:
            return self.ranges[i][2]
        return None

    def counts(self, text: str) -> Counter:
        c: Counter = Counter()
        for ch in text[: self.scan_chars]:
            s = self.script(ch)
            if s is not None:
                c[s] += 1
        return c

    def unfamiliar(self, text: str) -> bool:
        c = self.counts(text)
        total = sum(c.values())
        if not total:
            return False
        other = sum(n for s, n in c.items() if s not in self.familiar)
        return other >= self.min_share * total

    def majority(self, text: str) -> str | None:
        """The script most of the text's letters are in (ties: the first name in sorted order)."""
        c = self.counts(text)
        return max(sorted(c), key=lambda s: c[s]) if c else None

    def to_meta(self, census: Mapping[str, Mapping[str, int]] | None = None,
                gate: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": f"a prompt is unfamiliar when at least {self.min_share:g} of the letters among its first "
                    f"{self.scan_chars} code points (those in `ranges`) are of scripts not in `familiar`; "
                    "it then gets at least the standard tier (docs/allocator.md)",
            "familiar": sorted(self.familiar),
            "min_share": self.min_share,
            "scan_chars": self.scan_chars,
            "ranges": [[a, b, s] for a, b, s in self.ranges],
        }
        if census is not None:
            out["census"] = {"min_rows": MIN_ROWS, "train_rows_by_script": {k: dict(v) for k, v in sorted(census.items())}}
        if gate is not None:
            out["validation_gate"] = dict(gate)
        return out


def census(rows: Iterable[Mapping[str, Any]]) -> tuple[ScriptTable, dict[str, dict[str, int]]]:
    """The familiar scripts of a training split: each row counts for the script most of its
    letters are in; familiar = for harmful and for benign, at least MIN_ROWS rows or
    MIN_SHARE_OF_LABEL of that label's rows (whichever is fewer, and at least one)."""
    probe = ScriptTable(RANGES, ())
    tab: dict[str, Counter] = {}
    totals: Counter = Counter()
    for r in rows:
        totals[r["label"]] += 1
        top = probe.majority(r["prompt"])
        if top is not None:
            tab.setdefault(top, Counter())[r["label"]] += 1
    need = {lab: max(1, min(MIN_ROWS, math.ceil(MIN_SHARE_OF_LABEL * totals[lab]))) for lab in ("harmful", "benign")}
    familiar = [s for s, n in tab.items() if n["harmful"] >= need["harmful"] and n["benign"] >= need["benign"]]
    return ScriptTable(RANGES, familiar), {k: dict(v) for k, v in tab.items()}


def wilson_lower(found: float, n: int, z: float = GATE_Z) -> float:
    """Lower bound of the Wilson score interval for a proportion ``found / n``."""
    if n <= 0:
        return 0.0
    p = found / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def gate(table: ScriptTable, rows: Iterable[Mapping[str, Any]], risk: Iterable[float],
         min_harmful: int = GATE_MIN_HARMFUL, min_recall: float = GATE_MIN_RECALL,
         z: float = GATE_Z) -> tuple[ScriptTable, dict[str, Any]]:
    """Keep a familiar script familiar only if the model shows on the validation split that it
    can read it: where the split has at least ``min_harmful`` harmful prompts in the script, the
    share of them scoring risk >= 0.5 must reach ``min_recall`` with one-sided 95 % confidence
    (its Wilson lower bound, ``z``), so that a script is not trusted on a coin flip (23 of 44
    found is 0.52, but its lower bound is 0.40). Training prompts in a script are necessary,
    not sufficient: a script learned from 100 hand-written harmful prompts can still be scored
    as benign. A script the split has too few harmful prompts in keeps the census's verdict.
    Returns the table and what was measured, per script."""
    harmful: Counter = Counter()
    found: Counter = Counter()
    for r, x in zip(rows, risk):
        if r["label"] != "harmful":
            continue
        s = table.majority(r["prompt"])
        if s is None:
            continue
        harmful[s] += 1
        found[s] += float(x) >= 0.5
    bound = {s: wilson_lower(found[s], harmful[s], z) for s in harmful}
    measured = {s: {"validation_harmful": harmful[s], "recall": round(found[s] / harmful[s], 4),
                    "recall_lower_bound": round(bound[s], 4)} for s in sorted(harmful)}
    untrusted = sorted(s for s in table.familiar if harmful[s] >= min_harmful and bound[s] < min_recall)
    kept = ScriptTable(table.ranges, table.familiar - set(untrusted), table.min_share, table.scan_chars)
    return kept, {"rule": f"a familiar script with at least {min_harmful} harmful validation prompts stays familiar only if "
                          f"the share of them scoring risk >= 0.5 is at least {min_recall:g} with one-sided 95 % confidence "
                          f"(Wilson lower bound, z = {z:g})",
                  "min_harmful": min_harmful, "min_recall": min_recall, "z": z, "by_script": measured, "untrusted": untrusted}
