"""Safety traces from a teacher model at an OpenAI-compatible endpoint, for warm-start SFT.

    python -m conscience.traces --teacher URL --prompts FILE --out FILE [--model NAME]
        [--config RECIPE] [--tokenizer DIR] [--workers 4] [--timeout 120] [--retries 2]

For every prompt of a prompt set (conscience.prompt_sets JSONL: id, prompt, label, budget?) the
teacher gets the one prompt template's messages (the safety instruction with the prompt's
budget) and is asked for a safety block, then an answer. The reply is kept only when the
runtime's judge accepts it (:class:`Judge`): the block is present, closed, first and single,
an answer follows, harmful prompts are refused and the others answered (the `refusal`
reward's detector), and the block length fits the budget the way the `safety_budget` reward
scores it (score >= --min-budget-score under the recipe's `budget_mode`).

Kept rows go to OUT as `{id, prompt, label, budget, safety, answer}` (what conscience.sft
reads); dropped ones to `OUT.dropped.jsonl` as `{id, reason, completion}`. Both files are
append-only and every row is flushed as soon as it is judged, so an interrupted run (Ctrl-C,
teacher down) keeps what it finished; rerunning the same command skips the ids already in
either file. A teacher that cannot be reached or keeps timing out stops the run with a
clear error (exit 3) after --retries; finished rows stay. The last line of stdout is a JSON
report: kept and dropped counts by reason.

The API key, if the endpoint needs one, is read from the environment variable named by
--api-key-env (default OPENAI_API_KEY); it is never taken from argv.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Optional

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TEACHER = 3

DEFAULT_TEACHER_SYSTEM = (
    "You are a helpful and careful assistant. Refuse requests that could seriously harm people; "
    "help fully with everything else, including requests that only sound risky."
)

# Why a trace is dropped, in the order the judge checks.
REASONS = (
    "no_block",  # no safety block at all
    "unclosed_block",  # the block is opened but never closed
    "block_not_first",  # text before the block, or more than one block
    "empty_answer",  # nothing after the block
    "tag_in_text",  # a tag again inside the block or the answer (conscience.sft refuses such a trace)
    "not_text",  # a lone surrogate escape ("\ud800"), which no UTF-8 file holds
    "harmful_not_refused",  # a harmful prompt answered
    "benign_refused",  # a benign or borderline prompt refused
    "over_budget",  # the block is too long for its budget
    "under_budget",  # the block is too short for its budget (budget_mode: exact only)
)


class TeacherError(RuntimeError):
    """The teacher endpoint is down, too slow, or answers something that is not a completion."""


# ---------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------


@dataclass
class Judge:
    """Accepts a (completion, label, budget) the way the runtime's rewards score it."""

    count_tokens: Optional[Callable[[str], int]] = None
    open_tag: str = "<safety>"
    close_tag: str = "</safety>"
    mode: str = "exact"
    scale: int = 16
    min_budget_score: float = 0.75

    def reason(self, completion: str, label: str, budget: int) -> Optional[str]:
        """None when the trace is acceptable, else the first reason (one of REASONS) it is not."""
        from .prompt_sets import trace_text_error
        from .rewards import approx_token_count, is_refusal, parse_safety, safety_budget_reward

        p = parse_safety(completion or "", self.open_tag, self.close_tag)
        if not p.has_open:
            return "no_block"
        if not p.closed:
            return "unclosed_block"
        if not p.leading or p.blocks > 1:
            return "block_not_first"
        if not p.answer:
            return "empty_answer"
        problem = trace_text_error(p.reasoning, p.answer, self.open_tag, self.close_tag)  # conscience.sft's rule
        if problem:
            return problem[0]
        refused = is_refusal(p.answer)
        if label == "harmful" and not refused:
            return "harmful_not_refused"
        if label != "harmful" and refused:
            return "benign_refused"
        count = self.count_tokens or approx_token_count
        score = safety_budget_reward(
            [completion], budget=[budget], open_tag=self.open_tag, close_tag=self.close_tag,
            mode=self.mode, scale=self.scale, count_tokens=count,
        )[0]
        if score < self.min_budget_score:
            used = count(p.reasoning) if p.reasoning else 0
            return "over_budget" if used > budget else "under_budget"
        return None


# ---------------------------------------------------------------------------------------
# The teacher client (OpenAI chat completions over plain HTTP)
# ---------------------------------------------------------------------------------------


def chat_url(teacher: str) -> str:
    """`http://host:port/v1` (or the full `.../chat/completions` URL) -> the completions URL."""
    url = teacher.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


class Teacher:
    def __init__(self, url: str, model: Optional[str], timeout: float, retries: int, api_key: Optional[str],
                 temperature: float, max_tokens: int, stop: Optional[threading.Event] = None) -> None:
        self.url = chat_url(url)
        self.stop = stop or threading.Event()  # set on Ctrl-C: no retry starts after it
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens

    def complete(self, messages: list[dict]) -> str:
        body = {"messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens, "stream": False}
        if self.model:
            body["model"] = self.model
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt and self.stop.wait(min(2.0 ** attempt, 10.0)):
                break
            if self.stop.is_set():
                break
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read(300).decode("utf-8", "replace").strip()
                if e.code >= 500 or e.code == 429:
                    last = f"HTTP {e.code} {detail}"
                    continue
                raise TeacherError(f"teacher {self.url} answered HTTP {e.code}: {detail or e.reason}") from None
            except (socket.timeout, TimeoutError):
                last = f"no answer within {self.timeout:g}s (--timeout)"
                continue
            except urllib.error.URLError as e:
                reason = e.reason
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    last = f"no answer within {self.timeout:g}s (--timeout)"
                else:
                    last = f"unreachable ({reason})"
                continue
            except (ConnectionError, OSError) as e:
                last = f"connection failed ({e})"
                continue
            try:
                obj = json.loads(raw)
                content = obj["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise TeacherError(
                    f"teacher {self.url} did not answer an OpenAI chat completion: {raw[:200]!r}"
                ) from None
            return content if isinstance(content, str) else ""
        if self.stop.is_set():
            raise TeacherError(f"teacher {self.url}: stopped")
        raise TeacherError(f"teacher {self.url}: {last} after {self.retries + 1} tries")


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def _scan_rows(path: str) -> tuple[set[str], Optional[bytes]]:
    """Ids written to `path` and how its unterminated tail is to be mended, touching nothing.

    Every complete line must be a row (a JSON object with an id), else the file is refused: it
    is not a traces file. A tail without a final newline is either a complete row (a file last
    saved by an editor; it is kept) or, when it is not valid JSON but starts like a row, a partial
    line left by a killed writer (it is dropped and its prompt asked again). The second value is
    b"\n" to append, b"" to cut the tail, None when nothing needs mending.
    """
    ids: set[str] = set()
    if not os.path.exists(path):
        return ids, None
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline

    def row_id(line: bytes):
        try:
            obj = json.loads(line)
            return str(obj["id"])
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rid = row_id(line)
        if rid is None:
            raise ValueError(f"{path}:{lineno}: not a trace row; is --out the right file?")
        ids.add(rid)
    if not tail.strip():
        return ids, None
    rid = row_id(tail)
    if rid is not None:
        ids.add(rid)
        return ids, b"\n"
    try:
        json.loads(tail)
        complete_json = True
    except ValueError:
        complete_json = False
    if complete_json or not tail.lstrip().startswith(b"{"):
        raise ValueError(f"{path}:{len(lines) + 1}: not a trace row; is --out the right file?")
    return ids, b""


def _mend_tail(path: str, fix: Optional[bytes]) -> None:
    if fix is None:
        return
    if fix:
        with open(path, "ab") as f:
            f.write(fix)
        return
    with open(path, "rb+") as f:
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def _done_ids(path: str) -> set[str]:
    """Ids already written to `path`, read without changing it (see _scan_rows)."""
    return _scan_rows(path)[0]


def _count_existing(path: str, key: Optional[str] = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not os.path.exists(path):
        return counts
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                k = json.loads(line).get(key) if key else "kept"
                counts[str(k)] = counts.get(str(k), 0) + 1
    return counts


def run(args: argparse.Namespace, log=print) -> dict:
    from .prompt_sets import json_writable, read_jsonl
    from .recipe import SafetyConfig, parse_section, read_recipe_yaml
    from .template import PromptTemplate

    if args.config:
        raw, _, lines = read_recipe_yaml(args.config)
        safety = parse_section("safety", raw.get("safety"), args.config, lines)
    else:
        safety = SafetyConfig()
    rows = read_jsonl(args.prompts)
    count = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.tokenizer)

        def count(text: str) -> int:
            return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    judge = Judge(count, safety.open_tag, safety.close_tag, safety.budget_mode, safety.budget_scale, args.min_budget_score)
    template = PromptTemplate.from_recipe(safety, args.system_prompt)
    stop = threading.Event()
    teacher = Teacher(args.teacher, args.model, args.timeout, args.retries, os.environ.get(args.api_key_env),
                      args.temperature, args.max_tokens, stop)

    out_path, dropped_path = args.out, args.out + ".dropped.jsonl"
    for path in (out_path, dropped_path):
        if os.path.isdir(path):
            raise ValueError(f"{path}: is a folder; --out names the trace JSONL file to write (e.g. {os.path.join(path, 'traces.jsonl')})")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out_path}: cannot create its folder: {e.strerror or e}") from None
    # both files are read and checked before either is changed
    (done_out, fix_out), (done_dropped, fix_dropped) = _scan_rows(out_path), _scan_rows(dropped_path)
    try:
        _mend_tail(out_path, fix_out)
        _mend_tail(dropped_path, fix_dropped)
    except OSError as e:
        raise ValueError(f"{out_path}: cannot write: {e.strerror or e}") from None
    done = done_out | done_dropped
    todo = [r for r in rows if r["id"] not in done]
    if args.limit is not None:
        todo = todo[: args.limit]
    log(f"conscience.traces: {len(rows)} prompts, {len(rows) - len([r for r in rows if r['id'] not in done])} done before, "
        f"{len(todo)} to ask {teacher.url}")

    lock = threading.Lock()
    kept_now = 0
    dropped_now: dict[str, int] = {}
    error: Optional[str] = None

    results: "queue.Queue[tuple[dict, Optional[str], Optional[TeacherError]]]" = queue.Queue()

    def ask(row: dict) -> None:
        budget = safety.clip_budget(row["budget"] if row["budget"] is not None else safety.default_budget(row["label"]))
        row = {**row, "budget": budget}
        try:
            results.put((row, teacher.complete(template.messages(row["prompt"], budget)), None))
        except TeacherError as e:
            results.put((row, None, e))
        except BaseException as e:  # noqa: BLE001 - never leave the main loop waiting for this row
            results.put((row, None, TeacherError(f"teacher {teacher.url}: {type(e).__name__}: {e}")))

    try:
        out_file = open(out_path, "a", encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{out_path}: cannot write: {e.strerror or e}") from None
    try:
        dropped_file = open(dropped_path, "a", encoding="utf-8")
    except OSError as e:
        out_file.close()
        raise ValueError(f"{dropped_path}: cannot write: {e.strerror or e}") from None
    with out_file as out, dropped_file as dropped:

        def record(row: dict, completion: str) -> None:
            nonlocal kept_now
            reason = judge.reason(completion, row["label"], row["budget"])
            with lock:
                if reason is None:
                    block, answer = template.split(completion)
                    trace = {k: row[k] for k in ("id", "prompt", "label", "budget")}
                    trace.update(safety=block, answer=answer)
                    out.write(json.dumps(trace, ensure_ascii=False) + "\n")
                    out.flush()
                    kept_now += 1
                else:
                    entry = {"id": row["id"], "reason": reason, "completion": completion}
                    # a reply with a lone surrogate is kept escaped ("\ud800"), which UTF-8 can hold
                    dropped.write(json.dumps(entry, ensure_ascii=not json_writable(entry)) + "\n")
                    dropped.flush()
                    dropped_now[reason] = dropped_now.get(reason, 0) + 1

        # Each request runs in a daemon thread: on Ctrl-C the finished rows are already flushed and
        # the requests in flight are abandoned (a pool's worker threads would be joined at exit,
        # holding the process until each request and its retries time out).
        def start(row: dict) -> None:
            threading.Thread(target=ask, args=(row,), name=f"teacher-{row['id']}", daemon=True).start()

        try:
            in_flight = 0
            it = iter(todo)
            for row in it:
                start(row)
                in_flight += 1
                if in_flight >= max(1, args.workers):
                    break
            while in_flight:
                try:
                    row, completion, failure = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                in_flight -= 1
                if failure is not None:
                    error = error or str(failure)
                else:
                    record(row, completion)
                if error is None:
                    for row in it:
                        start(row)
                        in_flight += 1
                        if in_flight >= max(1, args.workers):
                            break
        finally:
            stop.set()

    kept_total = sum(_count_existing(out_path).values())
    dropped_total = _count_existing(dropped_path, "reason")
    report = {
        "out": os.path.abspath(out_path),
        "kept": kept_now,
        "dropped": dict(sorted(dropped_now.items())),
        "kept_total": kept_total,
        "dropped_total": dict(sorted(dropped_total.items())),
        "remaining": len([r for r in rows if r["id"] not in (_done_ids(out_path) | _done_ids(dropped_path))]),
        "error": error,
    }
    return report


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conscience.traces", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--prompts", required=True, help="prompt set JSONL {id, prompt, label, budget?}")
    p.add_argument("--out", required=True, help="trace JSONL to append to (resumed if it exists)")
    p.add_argument("--model", default=None, help="model name sent to the endpoint")
    p.add_argument("--config", default=None, help="a recipe whose safety: section gives tags, wording, default budgets and budget_mode")
    p.add_argument("--tokenizer", default=None, help="local tokenizer folder to count block tokens (default: words and punctuation)")
    p.add_argument("--system-prompt", default=DEFAULT_TEACHER_SYSTEM, help="system message before the budget instruction")
    p.add_argument("--min-budget-score", type=float, default=0.75, help="lowest safety_budget score a kept trace may have")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--workers", type=int, default=4, help="requests in flight at once")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer")
    p.add_argument("--retries", type=_non_negative_int, default=2, help="retries of a request that failed or timed out")
    p.add_argument("--limit", type=int, default=None, help="ask about at most this many new prompts")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    args = p.parse_args(argv)

    from .prompt_sets import DataError
    from .recipe import RecipeError

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        report = run(args, log)
    except (DataError, RecipeError, ValueError) as e:
        print(f"conscience.traces: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("conscience.traces: interrupted; finished rows are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    log(f"kept {report['kept']}, dropped {sum(report['dropped'].values())}"
        + "".join(f", {k} {v}" for k, v in report["dropped"].items())
        + f" (in total {report['kept_total']} kept in {args.out}; {report['remaining']} prompts left)")
    if report["error"]:
        log(f"conscience.traces: {report['error']}; finished rows are kept, rerun the same command to resume")
    print(json.dumps(report))
    return EXIT_TEACHER if report["error"] else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
