"""Safety prompt sets: reading, checking, budgeting and turning them into GRPO prompts.

A prompt set is JSONL, one object per line::

    {"id": "ha-cyber-01", "prompt": "...", "label": "harmful|benign|borderline", "category": "cyber", "budget": 48}

`budget` (safety-reasoning tokens) is optional. Blank lines are skipped. Any other problem
(bad JSON, a missing or mistyped field, an unknown label, a negative budget, a duplicate id,
non-UTF-8 bytes, a line over MAX_LINE_BYTES) raises :class:`DataError` naming the file and
the line.

Sources (``dataset_name`` in the recipe):
* a local ``.jsonl`` file, or a folder holding ``<split>.jsonl``;
* ``conscience/safety_prompts``: the set bundled with this package (``data/safety_prompts.jsonl``);
* anything else is a Hugging Face hub dataset name, loaded with ``datasets.load_dataset``
  only then (rows are checked the same way; "file" in errors is the dataset name).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from typing import IO, Any, Callable, Iterable, Optional

LABELS = ("harmful", "benign", "borderline")
MAX_LINE_BYTES = 1 << 20  # 1 MiB per row is far beyond any real prompt
MAX_DEPTH = 64  # JSON nesting; a prompt row needs 2
_SURROGATE = re.compile("[\ud800-\udfff]")

logger = logging.getLogger("conscience.prompt_sets")

BUNDLED_PATH = os.path.join(os.path.dirname(__file__), "data", "safety_prompts.jsonl")


class DataError(ValueError):
    """A prompt set that cannot be used; the message starts with `file:line:`."""


def not_text(name: str) -> str:
    """Why a field holding a lone surrogate escape ("\\ud800") is refused: no UTF-8 file holds one."""
    return f"`{name}` holds a lone surrogate escape (\\ud800-\\udfff), which is not text"


def check_row(obj: Any, where: str, prompt_column: str = "prompt") -> dict:
    """Validate one row; return a normalised copy. `where` is "file:line" for messages."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    row: dict[str, Any] = {}
    rid = obj.get("id")
    if rid is None or isinstance(rid, bool) or not isinstance(rid, (str, int)) or (isinstance(rid, str) and not rid.strip()):
        raise DataError(f"{where}: `id` must be a non-empty string or an integer")
    if isinstance(rid, str) and _SURROGATE.search(rid):
        raise DataError(f"{where}: {not_text('id')}")
    row["id"] = str(rid)
    prompt = obj.get(prompt_column)
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: `{prompt_column}` must be a non-empty string")
    if _SURROGATE.search(prompt):
        raise DataError(f"{where}: {not_text(prompt_column)}")
    row["prompt"] = prompt
    label = obj.get("label")
    if not isinstance(label, str) or label.strip().lower() not in LABELS:
        raise DataError(f"{where}: `label` must be one of {', '.join(LABELS)}, got {label!r}")
    row["label"] = label.strip().lower()
    category = obj.get("category", "")
    if category is None:
        category = ""
    if not isinstance(category, str):
        raise DataError(f"{where}: `category` must be a string, got {type(category).__name__}")
    if _SURROGATE.search(category):
        raise DataError(f"{where}: {not_text('category')}")
    row["category"] = category
    budget = obj.get("budget")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget != budget:
            raise DataError(f"{where}: `budget` must be a number of tokens, got {budget!r}")
        if isinstance(budget, int) and budget.bit_length() > 64:
            raise DataError(f"{where}: `budget` is a {len(str(budget))}-digit number of tokens: too large")
        if budget in (float("inf"), float("-inf")):
            raise DataError(f"{where}: `budget` must be a finite number of tokens, got {budget!r} (too large for a float)")
        if budget < 0:
            raise DataError(f"{where}: `budget` must be >= 0, got {budget}")
        if float(budget) != int(budget):
            raise DataError(f"{where}: `budget` must be a whole number of tokens, got {budget}")
        budget = int(budget)
    row["budget"] = budget
    return row


def trace_text_error(block: str, answer: str, open_tag: str = "<safety>", close_tag: str = "</safety>") -> Optional[tuple[str, str]]:
    """Why a trace's safety-block text and answer cannot be trained on, as (reason, message),
    or None. The one rule shared by conscience.sft (which refuses such a trace, naming
    FILE:LINE) and conscience.traces' judge (which drops such a teacher reply), so that traces
    only writes what sft reads. Reasons: ``not_text`` (a lone surrogate, which no UTF-8 file or
    Arrow table holds), ``tag_in_text`` (a tag inside the block text or the answer: the
    template adds the tags, and a second one would teach the model to close the block twice),
    ``empty_answer``."""
    for name, text in (("safety", block), ("answer", answer)):
        if _SURROGATE.search(text):
            return "not_text", not_text(name)
    for name, text in (("safety", block), ("answer", answer)):
        for tag in (open_tag, close_tag):
            if tag in text:
                return "tag_in_text", f"`{name}` contains the tag {tag}; give only the text (the template adds the tags)"
    if not answer.strip():
        return "empty_answer", "`answer` must be a non-empty string"
    return None


def json_writable(value: Any) -> bool:
    """Whether ``value`` read from a JSONL line can be written back as JSON in UTF-8: Python's
    reader takes a lone surrogate ("\\ud800") and NaN/Infinity, which the writers refuse."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def open_regular(path: str, what: str = "a prompt set is a .jsonl file", reading: str = "cannot read"):
    """Open ``path`` for reading only if it is a regular file. A FIFO, socket or device (a
    recipe's `dataset_name` pointing at one, or the recipe or its `chat_template` file) is
    refused at once instead of blocking the trainer forever: the open is non-blocking and the
    type is checked on the open file. ``what`` ends the not-a-file message, ``reading`` starts
    the cannot-open one."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise DataError(f"{path}: {reading}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
            raise DataError(f"{path}: not a regular file ({kind}); {what}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """True if brackets outside strings nest deeper than ``limit`` (checked before json.loads,
    whose recursion would otherwise end the process's stack). Linear in the text."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def iter_jsonl(path: str, on_error: Optional[Callable[[str], None]] = None, max_line_bytes: int = MAX_LINE_BYTES,
               max_depth: int = MAX_DEPTH) -> Iterable[tuple[int, Any]]:
    """(line number, parsed JSON value) for each non-blank line of the file at `path`; see
    `iter_jsonl_stream`. An unreadable file (or a FIFO, a folder) always raises."""
    f = open_regular(path)
    with f:
        yield from iter_jsonl_stream(f, path, on_error, max_line_bytes, max_depth)


def iter_jsonl_stream(stream: IO[bytes], name: str, on_error: Optional[Callable[[str], None]] = None,
                      max_line_bytes: int = MAX_LINE_BYTES, max_depth: int = MAX_DEPTH) -> Iterable[tuple[int, Any]]:
    """(line number, parsed JSON value) for each non-blank line of a byte stream, read one line
    at a time with a length cap, so a huge file or line is never loaded whole. A line over
    `max_line_bytes`, NUL bytes, invalid UTF-8, nesting over `max_depth` and invalid JSON are
    errors naming `name:line`: raised as DataError, or, with `on_error`, reported to it (before
    the next value is yielded, so errors and values keep their order) and the line skipped.
    The one JSONL line reader of the runtime (prompt sets, the allocator's pool, `allocator
    score` and `label`, eval prompts)."""

    def bad(msg: str) -> None:
        if on_error is None:
            raise DataError(msg)
        on_error(msg)

    lineno = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            break
        lineno += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            bad(f"{name}:{lineno}: line longer than {max_line_bytes} bytes")
            while raw and not raw.endswith(b"\n"):  # the rest of the line, in bounded pieces
                raw = stream.readline(max_line_bytes + 1)
            continue
        if b"\x00" in raw:
            bad(f"{name}:{lineno}: binary data (NUL byte); expected JSON text")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad(f"{name}:{lineno}: not UTF-8 (byte {e.start})")
            continue
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark some editors write (before the blank check: a BOM alone is a blank line)
        if not text.strip():
            continue
        if too_deep(text, max_depth):
            bad(f"{name}:{lineno}: JSON nested deeper than {max_depth} levels")
            continue
        try:
            value = json.loads(text.rstrip())  # so a column is on this line, not past its end
        except json.JSONDecodeError as e:
            bad(f"{name}:{lineno}: invalid JSON: {e.msg} (column {e.colno})")
            continue
        except ValueError as e:  # e.g. an integer of more than 4,300 digits (Python's int limit)
            bad(f"{name}:{lineno}: invalid JSON: {e}")
            continue
        except RecursionError:
            bad(f"{name}:{lineno}: JSON nested too deeply")
            continue
        yield lineno, value


def read_jsonl(path: str, prompt_column: str = "prompt") -> list[dict]:
    """Read and check a JSONL prompt set. Errors name `path:line`."""
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        row = check_row(obj, f"{path}:{lineno}", prompt_column)
        if row["id"] in seen:
            raise DataError(f"{path}:{lineno}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = lineno
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no prompts (empty file)")
    return rows


_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _is_local(name: str) -> bool:
    """Whether `dataset_name` is meant as a local path (never sent to the hub): absolute, ./ or
    ../, an existing path, a name ending in a data file suffix (a hub name is `owner/name`),
    or a path whose first folder exists here (`data/prompts.json` with a `data/` folder)."""
    if os.path.isabs(name) or name.startswith(("./", "../")) or os.path.exists(name):
        return True
    if name.lower().endswith(_FILE_SUFFIXES):
        return True
    first = name.replace(os.sep, "/").split("/")[0]
    return "/" in name.replace(os.sep, "/") and first not in ("", ".", "..") and os.path.isdir(first)


def has_splits(dataset_name: Optional[str]) -> bool:
    """Whether `dataset_name` names splits load_prompts can tell apart: a folder of
    <split>.jsonl files or a hub dataset. A single .jsonl file and the bundled set are one split
    whatever split is asked for."""
    from .recipe import BUNDLED_DATASET_NAME

    if not dataset_name or dataset_name == BUNDLED_DATASET_NAME:
        return False
    return os.path.isdir(dataset_name) if _is_local(dataset_name) else True


def load_prompts(
    dataset_name: Optional[str],
    split: str = "train",
    dataset_config: Optional[str] = None,
    prompt_column: str = "prompt",
) -> list[dict]:
    """Rows of a prompt set (checked). Only a name that is not local reaches the hub."""
    from .recipe import BUNDLED_DATASET_NAME

    if not dataset_name:
        raise DataError("dataset_name is required (a .jsonl path, a folder, conscience/safety_prompts or a hub name)")
    if dataset_name == BUNDLED_DATASET_NAME:
        return read_jsonl(BUNDLED_PATH, prompt_column)
    if _is_local(dataset_name):
        if os.path.isdir(dataset_name):
            path = os.path.join(dataset_name, f"{split}.jsonl")
            if not os.path.exists(path):
                raise DataError(f"{dataset_name}: folder has no {split}.jsonl for split {split!r}")
            return read_jsonl(path, prompt_column)
        if not os.path.exists(dataset_name):
            raise DataError(f"{dataset_name}: no such file")
        return read_jsonl(dataset_name, prompt_column)
    return _load_hub(dataset_name, split, dataset_config, prompt_column)


def _load_hub(name: str, split: str, config: Optional[str], prompt_column: str) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline, no such dataset, no such split, ...
        raise DataError(
            f"{name}: not a local file or folder, and the Hugging Face hub dataset {name!r} (split {split!r}) "
            f"could not be loaded: {type(e).__name__}: {e}"
        ) from None
    rows = []
    for i, obj in enumerate(ds):
        rows.append(check_row(dict(obj), f"{name}[{split}]:{i + 1}", prompt_column))
    if not rows:
        raise DataError(f"{name}[{split}]: no prompts")
    return rows


# ---------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------


def assign_budgets(rows: list[dict], safety: Any, allocator_cfg: Optional[dict] = None) -> tuple[list[dict], dict]:
    """Fill every row's `budget` per `safety.budget_source`; returns (rows, info).

    info = {"source": {"dataset": n, "allocator": n, "label": n},
            "allocator": "used"|"disabled"|"failed: ..."|"not needed"}

    The allocator is called through :func:`conscience.allocator.budgets`; ``allocator.enabled:
    false`` in the recipe turns it off (rows without a budget take the per-label default, and
    ``budget_source: allocator`` is then an error). A failure to import or run it (onnxruntime
    missing, say) is a fallback to per-label defaults under ``auto`` and an error under
    ``allocator``; either way ``info`` says so, and the trainer records it in ``run_started``.
    """
    source = getattr(safety, "budget_source", "auto")
    counts = {"dataset": 0, "allocator": 0, "label": 0}
    need_alloc = [i for i, r in enumerate(rows) if source == "allocator" or (source == "auto" and r.get("budget") is None)]
    alloc_budgets: dict[int, int] = {}
    status = "not needed"
    enabled = (allocator_cfg or {}).get("enabled", True)
    if not isinstance(enabled, bool):  # `enabled: "false"` or `0` must not leave the allocator running
        raise DataError(f"allocator.enabled must be true or false, got {enabled!r}")
    if need_alloc:
        if enabled is False:
            status = "disabled"
            if source == "allocator":
                raise DataError("safety.budget_source is `allocator` but allocator.enabled is false")
        else:
            try:
                from .allocator import budgets as allocator_budgets

                got = allocator_budgets([rows[i]["prompt"] for i in need_alloc], dict(allocator_cfg or {}))
                if len(got) != len(need_alloc):
                    raise ValueError(f"returned {len(got)} budgets for {len(need_alloc)} prompts")
                for i, b in zip(need_alloc, got):
                    alloc_budgets[i] = safety.clip_budget(b)
                status = "used"
            except Exception as e:  # noqa: BLE001
                if source == "allocator":
                    raise DataError(f"allocator failed: {e}") from e
                status = f"failed: {e}"
                logger.warning("allocator failed (%s); using per-label default budgets", e)
    out = []
    for i, r in enumerate(rows):
        r = dict(r)
        if source in ("auto", "dataset") and r.get("budget") is not None:
            r["budget"] = safety.clip_budget(r["budget"])
            counts["dataset"] += 1
        elif i in alloc_budgets:
            r["budget"] = alloc_budgets[i]
            counts["allocator"] += 1
        else:
            r["budget"] = safety.default_budget(r["label"])
            counts["label"] += 1
        out.append(r)
    return out, {"source": counts, "allocator": status}


# ---------------------------------------------------------------------------------------
# GRPO prompts
# ---------------------------------------------------------------------------------------


def build_messages(row: dict, safety: Any, system_prompt: Optional[str] = None) -> list[dict]:
    """The conversational prompt: a system message carrying the budget, then the user prompt."""
    from .template import PromptTemplate

    return PromptTemplate.from_recipe(safety, system_prompt).messages(row["prompt"], int(row["budget"]))


def prompts_over(dataset: Any, tokenizer: Any, limit: int) -> tuple[int, Optional[tuple[Any, int]]]:
    """How many of `dataset`'s prompts (to_grpo_dataset's: system message with the budget
    instruction, then the user's) take more than `limit` tokens once the chat template is
    applied, counted as TRL 0.18's GRPOTrainer counts them; and the first one's (id, tokens)."""
    count, first = 0, None
    for pid, messages in zip(dataset["id"], dataset["prompt"]):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > limit:
            count += 1
            first = first or (pid, n)
    return count, first


def to_grpo_dataset(rows: Iterable[dict], safety: Any, system_prompt: Optional[str] = None):
    """A `datasets.Dataset` with columns prompt (messages), safety_label, budget, category, id.

    (`safety_label`, not `label`: TRL treats a `label` column as a KTO preference dataset.)
    """
    import datasets

    rows = list(rows)
    return datasets.Dataset.from_dict(
        {
            "prompt": [build_messages(r, safety, system_prompt) for r in rows],
            "safety_label": [r["label"] for r in rows],
            "budget": [int(r["budget"]) for r in rows],
            "category": [r.get("category", "") for r in rows],
            "id": [r["id"] for r in rows],
        }
    )
