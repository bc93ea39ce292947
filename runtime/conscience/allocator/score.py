"""Python inference with onnxruntime: the reference the TypeScript side must match."""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np

from .policy import AllocatorConfig, decide, load_config, read_allocator_json
from .unfamiliar import ScriptTable

CHARS_PER_TOKEN_WINDOW = 16
_SURROGATE = re.compile("[\ud800-\udfff]")
# Where BERT's normalizer sees whitespace: \t \n \r and the Unicode White_Space characters that
# are not control characters. str.isspace() also takes \v, \f, \x1c-\x1f and \x85, which the
# normalizer deletes (they join the letters around them into one word), so a prefix cut there
# would split a word the whole text keeps. tokenizer.ts's BERT_WHITESPACE is the same set.
BERT_WHITESPACE = frozenset("\t\n\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(map(chr, range(0x2000, 0x200B)))
# Where a prefix may also be cut: before a character BERT always makes a token of its own, so
# the word before it ends there whatever follows. ASCII punctuation (the pre-tokenizer splits it
# off) and the CJK ideographs of the Basic Multilingual Plane (the normalizer spaces each one):
# fixed sets, unlike Unicode's punctuation category, whose tables differ between the Rust
# tokenizer and a JavaScript engine. Without them a 1 MB Chinese prompt, which has no
# whitespace, was tokenized whole (1.6 s). tokenizer.ts's BERT_CUT is the same set.
BERT_CUT = BERT_WHITESPACE | frozenset(map(chr, [*range(0x21, 0x30), *range(0x3A, 0x41), *range(0x5B, 0x61), *range(0x7B, 0x7F),
                                                  *range(0x3400, 0x4DC0), *range(0x4E00, 0xA000), *range(0xF900, 0xFB00)]))


def clean_text(text: str) -> str:
    """Lone UTF-16 surrogates (possible in Python strings, e.g. from a JSON "\\ud800" escape)
    cannot be tokenized: each becomes U+FFFD, as a UTF-8 encoder would write it."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
_CACHE: dict[str, "Allocator"] = {}
_LOCK = threading.Lock()


class Allocator:
    """One loaded model folder: model.onnx + tokenizer.json + allocator.json."""

    def __init__(self, model_dir: str | Path, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.dir = Path(model_dir)
        for f in ("model.onnx", "tokenizer.json", "allocator.json"):
            if not (self.dir / f).is_file():
                raise FileNotFoundError(f"allocator model folder {self.dir} has no {f}")
        meta_file = self.dir / "allocator.json"
        self.meta: dict[str, Any] = read_allocator_json(meta_file)
        max_length = self.meta.get("max_length", 128)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
            raise ValueError(f"{meta_file}: max_length must be an integer >= 3, got {max_length!r}")
        self.max_length = max_length
        cats = self.meta.get("categories", [])
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise ValueError(f"{meta_file}: categories must be a list of strings")
        self.categories: list[str] = cats
        try:
            self.scripts = ScriptTable.from_meta(self.meta)
        except ValueError as e:
            raise ValueError(f"{meta_file}: {e}") from None
        try:
            self.raw = Tokenizer.from_file(str(self.dir / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for a malformed file
            raise ValueError(f"{self.dir / 'tokenizer.json'}: not a tokenizer: {e}") from None
        self.raw.no_truncation()
        self.raw.no_padding()
        self.cls_id = self.raw.token_to_id("[CLS]")
        self.sep_id = self.raw.token_to_id("[SEP]")
        if self.cls_id is None or self.sep_id is None:
            raise ValueError(f"{self.dir / 'tokenizer.json'}: no [CLS]/[SEP] token")
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        try:
            self.sess = ort.InferenceSession(str(self.dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime's own exception types (InvalidProtobuf, Fail)
            raise ValueError(f"{self.dir / 'model.onnx'}: onnxruntime cannot load it: {e}") from None
        self.out_names = [o.name for o in self.sess.get_outputs()]

    def content_ids(self, text: str) -> tuple[list[int], bool]:
        """Content token ids (no [CLS]/[SEP]) of the first ``max_length - 2`` tokens and
        whether more followed. A long prompt is tokenized through a prefix cut at whitespace, ASCII
        punctuation or a CJK ideograph (BERT words never span them, so the prefix's first tokens
        are the whole text's: BERT_CUT),
        widened x4 until it yields more than fits: a 1 MB prompt costs a few KB of
        tokenization. Same procedure as extension/src/core/allocator/tokenizer.ts."""
        text = clean_text(text)
        room = self.max_length - 2
        window = room * CHARS_PER_TOKEN_WINDOW
        while True:
            if window >= len(text):
                ids = self.raw.encode(text, add_special_tokens=False).ids
                break
            cut = window
            while cut < len(text) and text[cut] not in BERT_CUT:
                cut += 1
            if cut >= len(text):
                ids = self.raw.encode(text, add_special_tokens=False).ids
                break
            ids = self.raw.encode(text[:cut], add_special_tokens=False).ids
            if len(ids) > room:
                break
            window *= 4
        return (ids[:room], True) if len(ids) > room else (ids, False)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool], list[int]]:
        return self.pad([self.content_ids(t) for t in texts])

    def pad(self, rows: list[tuple[list[int], bool]]) -> tuple[np.ndarray, np.ndarray, list[bool], list[int]]:
        """[CLS] content [SEP], right-padded with 0 to the longest row."""
        seq = max(len(ids) for ids, _ in rows) + 2
        ids = np.zeros((len(rows), seq), dtype=np.int64)
        mask = np.zeros((len(rows), seq), dtype=np.int64)
        for i, (c, _) in enumerate(rows):
            full = [self.cls_id, *c, self.sep_id]
            ids[i, : len(full)] = full
            mask[i, : len(full)] = 1
        return ids, mask, [t for _, t in rows], [len(c) + 2 for c, _ in rows]

    def run(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        res = self.sess.run(None, {"input_ids": ids, "attention_mask": mask})
        return dict(zip(self.out_names, res))

    def unfamiliar(self, text: str) -> bool:
        """Written mostly in a script the model did not learn both labels in (unfamiliar.py). The
        text is not cleaned first: a lone surrogate is in no script's range, and neither is the
        U+FFFD clean_text would make of it."""
        return self.scripts.unfamiliar(text) if self.scripts else False

    def run_texts(self, texts: list[str], batch: int = 32, sort: bool = True) -> list[dict[str, Any]]:
        """Raw model outputs per prompt, in input order: {risk, ambiguity, borderline,
        categories (array), truncated, tokens, unfamiliar}. With ``sort`` the prompts are batched by token
        count (less padding), as the TypeScript side does; a row's outputs do not depend on its
        batch, so this only changes speed."""
        rows = [self.content_ids(t) for t in texts]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0])) if sort else list(range(len(rows)))
        out: list[Any] = [None] * len(texts)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            ids, mask, truncated, tokens = self.pad([rows[k] for k in idx])
            r = self.run(ids, mask)
            for j, k in enumerate(idx):
                out[k] = {
                    "risk": float(r["risk"][j]),
                    "ambiguity": float(r["ambiguity"][j]),
                    "borderline": float(r["borderline"][j]) if "borderline" in r else None,
                    "categories": r["categories"][j],
                    "truncated": truncated[j],
                    "tokens": tokens[j],
                    "unfamiliar": self.unfamiliar(texts[k]),
                }
        return out

    def score(self, texts: list[str], cfg: AllocatorConfig | None = None, batch: int = 32,
              sort: bool = True) -> list[dict[str, Any]]:
        """Outputs plus the policy's tier and budget for each prompt, in input order."""
        cfg = cfg or load_config({"model": str(self.dir)})
        out: list[Any] = []
        for r in self.run_texts(texts, batch, sort):
            tier, budget = decide(r["risk"], r["ambiguity"], cfg, r["unfamiliar"])
            out.append({
                "risk": r["risk"],
                "ambiguity": r["ambiguity"],
                "borderline": r["borderline"],
                "categories": {n: float(p) for n, p in zip(self.categories, r["categories"])},
                "tier": tier,
                "budget": budget,
                "truncated": r["truncated"],
                "tokens": r["tokens"],
                "unfamiliar": r["unfamiliar"],
            })
        return out


def get_allocator(model_dir: str | Path) -> Allocator:
    key = str(Path(model_dir).resolve())
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = Allocator(key)
        return _CACHE[key]


def score_prompts(prompts: list[str], allocator_cfg: dict | AllocatorConfig | None = None) -> list[dict[str, Any]]:
    cfg = load_config(allocator_cfg)
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise TypeError(f"score_prompts: prompt #{bad[0]} is {type(prompts[bad[0]]).__name__}, not str")
    return get_allocator(cfg.model_dir()).score(list(prompts), cfg)


# ---------------------------------------------------------------------------------------
# JSONL scoring, streamed.

MAX_LINE_BYTES = 16 * 1024 * 1024  # as extension/src/core/allocator/read.ts
MAX_DEPTH = 64
# A scoring window ends after 8 batches of prompts or when its prompts pass this many characters
# (a line may hold 16 MiB): extension/src/cli/inspect.ts WINDOW_CHARS. Output does not depend on it.
WINDOW_CHARS = 1 << 24


def iter_jsonl_prompts(stream: IO[bytes], name: str) -> Iterator[tuple[int | None, str | None, Any, str | None]]:
    """Yields (line_no, prompt, id, error) in input order; `error` is "FILE:LINE: why" (line_no
    is None for the reader's errors). Each problem is an error for its line only: what the
    runtime's one JSONL reader reports (`prompt_sets.iter_jsonl_stream`: a line over
    MAX_LINE_BYTES read in bounded chunks, invalid UTF-8, JSON nested deeper than MAX_DEPTH,
    bad JSON), then a value that is not an object with a string "prompt"."""
    from ..prompt_sets import iter_jsonl_stream, json_writable

    errors: list[str] = []

    def drain() -> Iterator[tuple[None, None, None, str]]:
        for e in errors:
            yield None, None, None, e
        errors.clear()

    for n, obj in iter_jsonl_stream(stream, name, errors.append, MAX_LINE_BYTES, MAX_DEPTH):
        yield from drain()
        if not isinstance(obj, dict):
            yield n, None, None, f"{name}:{n}: expected a JSON object with a \"prompt\" string"
            continue
        prompt = obj.get("prompt")
        if not isinstance(prompt, str):
            yield n, None, obj.get("id"), f"{name}:{n}: \"prompt\" is missing or not a string"
            continue
        pid = obj.get("id", n)
        if not json_writable(pid):  # the id is written back as it came
            yield n, None, None, f"{name}:{n}: \"id\" cannot be written back as JSON (a lone surrogate, NaN or Infinity)"
            continue
        yield n, prompt, pid, None
    yield from drain()


def score_stream(stream: IO[bytes], name: str, out: IO[str], err: IO[str],
                 allocator_cfg: dict | None = None, batch: int = 32) -> tuple[int, int]:
    """Scores a JSONL byte stream, writing one JSON object per good line to ``out`` in input
    order and one error per bad line to ``err``. Returns (scored, errors)."""
    cfg = load_config(allocator_cfg)
    alloc = get_allocator(cfg.model_dir())
    pending: list[tuple[int, Any, str]] = []
    scored = errors = pending_chars = 0

    def flush() -> None:
        nonlocal scored, pending_chars
        pending_chars = 0
        if not pending:
            return
        res = alloc.score([p for _, _, p in pending], cfg, batch=batch)
        for (n, pid, _), r in zip(pending, res):
            rec = {"id": pid, "line": n, "risk": round(r["risk"], 6), "tier": r["tier"], "budget": r["budget"],
                   "ambiguity": round(r["ambiguity"], 6),
                   "categories": {k: round(v, 6) for k, v in r["categories"].items()},
                   "truncated": r["truncated"], "unfamiliar": r["unfamiliar"]}
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        scored += len(pending)
        pending.clear()

    for n, prompt, pid, error in iter_jsonl_prompts(stream, name):
        if error is not None:
            flush()  # keep output in input order relative to errors
            err.write(error + "\n")
            errors += 1
            continue
        pending.append((n, pid, prompt))
        pending_chars += len(prompt)
        # a window of 8 batches, sorted by length inside, or fewer prompts holding WINDOW_CHARS
        if len(pending) >= batch * 8 or pending_chars >= WINDOW_CHARS:
            flush()
    flush()
    return scored, errors
