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
either file. Replies that stopped at --max-tokens (`truncated`), were larger than the reply
cap (`too_long`) or held no text (`no_content`) are counted but not recorded, so a rerun asks
them again. A teacher that cannot be reached or keeps timing out stops the run with a
clear error (exit 3) after --retries; finished rows stay. The last line of stdout is a JSON
report: kept and dropped counts by reason. One run at a time writes OUT (`OUT.lock`).

The API key, if the endpoint needs one, is read from the environment variable named by
--api-key-env (default OPENAI_API_KEY); it is never taken from argv, and never shown in an
error. A redirect from the teacher is not followed (the key would go with it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
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
    "truncated",  # the reply stopped at --max-tokens (finish_reason "length"): its answer is cut off
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

# Replies that are not judged at all: counted in the report, but not written to OUT.dropped.jsonl,
# so the prompt is asked again by a rerun (with a larger --max-tokens for `truncated`).
NOT_JUDGED = (
    "too_long",  # the HTTP reply is larger than the cap (reply_limit): read no further
    "no_content",  # the reply holds no text (content null, e.g. a content filter or a refusal field)
)
RETRIED = ("truncated",) + NOT_JUDGED  # drops a rerun asks again

# A reply body larger than this is not read: REPLY_BYTES_PER_TOKEN per --max-tokens, at least MIN_REPLY_BYTES.
REPLY_BYTES_PER_TOKEN = 64
MIN_REPLY_BYTES = 1 << 20
# A dropped completion is kept in OUT.dropped.jsonl up to this many characters.
DROPPED_COMPLETION_CHARS = 4000


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

    def reason(self, completion: str, label: str, budget: int, finish_reason: Optional[str] = None) -> Optional[str]:
        """None when the trace is acceptable, else the first reason (one of REASONS) it is not."""
        from .prompt_sets import trace_text_error
        from .rewards import approx_token_count, is_refusal, parse_safety, safety_budget_reward

        if finish_reason == "length":
            return "truncated"  # a closed block and half an answer would pass the checks below
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


@dataclass
class Reply:
    """What the teacher answered: the text (None when the reply holds none), why it stopped, and
    whether the reply was too large to read (then `content` is None)."""

    content: Optional[str]
    finish_reason: Optional[str] = None
    too_long: bool = False


def reply_text(content: Any) -> Optional[str]:
    """`message.content` as text: a string, or a list of content parts whose `text` parts are
    joined (some gateways answer so); None when it holds no text (null, a number, no text part)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part["text"] for part in content
                 if isinstance(part, dict) and isinstance(part.get("text"), str) and part.get("type", "text") in ("text", "output_text")]
        return "".join(texts) if texts else None
    return None


def api_key_from_env(name: str) -> Optional[str]:
    """The API key in $name, surrounding whitespace removed; None when unset or blank. A key
    with a character no HTTP header may hold is a ValueError naming the variable, never the key."""
    raw = os.environ.get(name)
    key = raw.strip() if raw is not None else ""
    if not key:
        return None
    for c in key:
        if ord(c) < 0x20 or ord(c) == 0x7F:
            raise ValueError(f"${name} holds a control character inside the key (a line break or a CR from a "
                             "Windows .env?); the key is not shown")
        if ord(c) > 0x7E:
            raise ValueError(f"${name} holds a non-ASCII character, which an HTTP header cannot carry; the key is not shown")
    return key


_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"\\]+")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is not followed: urllib would re-send the POST as a GET, with the Authorization
    header, to wherever Location points (another host too). It becomes an HTTPError instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


class _Deadline:
    """One request's overall deadline: when it passes, the sockets the request opened are shut
    down, so a reply that trickles in (or headers that never end) cannot hold it past --timeout;
    the socket timeout alone bounds each read, not the whole exchange."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socks: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _watched(http_class, deadline: _Deadline):
    class Watched(http_class):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    return Watched


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    class Http(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kw):  # type: ignore[override]
            return super().do_open(_watched(http_class, deadline), req, **kw)

    class Https(urllib.request.HTTPSHandler):
        def do_open(self, http_class, req, **kw):  # type: ignore[override]
            return super().do_open(_watched(http_class, deadline), req, **kw)

    return urllib.request.build_opener(_NoRedirect, Http, Https)


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
        self.reply_limit = max(MIN_REPLY_BYTES, REPLY_BYTES_PER_TOKEN * max(0, max_tokens))

    def redact(self, text: str) -> str:
        """`text` with the API key and any Authorization value replaced by ***: an error's text
        (an exception's, a server's echo) may hold the request's headers."""
        if self.api_key:
            text = text.replace(self.api_key, "***")
        return _BEARER.sub(r"\1***", text)

    def complete(self, messages: list[dict]) -> Reply:
        try:
            return self._complete(messages)
        except TeacherError as e:
            raise TeacherError(self.redact(str(e))) from None

    def _complete(self, messages: list[dict]) -> Reply:
        body = {"messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens, "stream": False}
        if self.model:
            body["model"] = self.model
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        timed_out = f"no answer within {self.timeout:g}s (--timeout)"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt and self.stop.wait(min(2.0 ** attempt, 10.0)):
                break
            if self.stop.is_set():
                break
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            deadline = _Deadline(self.timeout)
            try:
                with _opener(deadline).open(req, timeout=self.timeout) as resp:
                    raw = self._read(resp, deadline)
            except urllib.error.HTTPError as e:
                if 300 <= e.code < 400:
                    where = e.headers.get("Location") if e.headers else None
                    where = urllib.parse.urljoin(self.url, where) if where else "no Location"
                    raise TeacherError(
                        f"teacher {self.url} answered HTTP {e.code} redirecting to {where}; a redirect is not followed "
                        "(the request and its API key would go there): give the final URL as --teacher") from None
                detail = e.read(300).decode("utf-8", "replace").strip()
                if e.code >= 500 or e.code == 429:
                    last = f"HTTP {e.code} {detail}"
                    continue
                raise TeacherError(f"teacher {self.url} answered HTTP {e.code}: {detail or e.reason}") from None
            except (socket.timeout, TimeoutError):
                last = timed_out
                continue
            except urllib.error.URLError as e:
                reason = e.reason
                if deadline.expired or isinstance(reason, (socket.timeout, TimeoutError)):
                    last = timed_out
                else:
                    last = f"unreachable ({reason})"
                continue
            except http.client.HTTPException as e:  # IncompleteRead, BadStatusLine, ...: a reply cut off
                last = timed_out if deadline.expired else f"reply cut off ({type(e).__name__})"
                continue
            except (ConnectionError, OSError) as e:
                last = timed_out if deadline.expired else f"connection failed ({e})"
                continue
            finally:
                deadline.cancel()
            if raw is None:
                return Reply(None, too_long=True)
            try:
                obj = json.loads(raw)
                choice = obj["choices"][0]
                message = choice["message"]
                content = message.get("content")
                finish = choice.get("finish_reason")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise TeacherError(
                    f"teacher {self.url} did not answer an OpenAI chat completion: {raw[:200]!r}"
                ) from None
            return Reply(reply_text(content), finish if isinstance(finish, str) else None)
        if self.stop.is_set():
            raise TeacherError(f"teacher {self.url}: stopped")
        raise TeacherError(f"teacher {self.url}: {last} after {self.retries + 1} tries")

    def _read(self, resp, deadline: _Deadline) -> Optional[bytes]:
        """The body, or None when it is larger than reply_limit (the rest is not read). A body
        that ends before its Content-Length is an IncompleteRead (http.client's read(n) returns
        what came without saying so); one the deadline stopped is a timeout."""
        length = resp.headers.get("Content-Length") if resp.headers else None
        if length and length.strip().isdigit() and int(length) > self.reply_limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = resp.read(min(1 << 16, self.reply_limit + 1 - size))
            if not chunk:
                if deadline.expired:
                    raise TimeoutError("deadline")
                if getattr(resp, "length", None):  # bytes still expected
                    raise http.client.IncompleteRead(b"".join(chunks), resp.length)
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.reply_limit:
                return None


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


@dataclass
class _Scan:
    ids: set
    counts: dict  # rows by `reason` (the dropped file) or "kept" (OUT)
    fix: Optional[bytes] = None  # b"\n" to append, b"" to cut the tail at `cut_at`, None: nothing to mend
    cut_at: int = 0


def _scan_rows(path: str, key: Optional[str] = None) -> _Scan:
    """Ids written to `path`, its rows counted (by `key`, else as "kept"), and how its
    unterminated tail is to be mended, touching nothing. Read line by line.

    Every complete line must be a row (a JSON object with an id), else the file is refused: it
    is not a traces file. A tail without a final newline is either a complete row (a file last
    saved by an editor; it is kept) or, when it is not valid JSON but starts like a row, a partial
    line left by a killed writer (it is dropped and its prompt asked again).
    """
    scan = _Scan(set(), {})
    if not os.path.exists(path):
        return scan

    def row(line: bytes) -> Optional[dict]:
        try:
            obj = json.loads(line)
            str(obj["id"])
            return obj
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    def count(obj: dict) -> None:
        scan.ids.add(str(obj["id"]))
        k = str(obj.get(key)) if key else "kept"
        scan.counts[k] = scan.counts.get(k, 0) + 1

    offset = 0
    lineno = 0
    with open(path, "rb") as f:
        for line in f:
            lineno += 1
            if not line.endswith(b"\n"):
                break  # the tail, handled below
            offset += len(line)
            if not line.strip():
                continue
            obj = row(line)
            if obj is None:
                raise ValueError(f"{path}:{lineno}: not a trace row; is --out the right file?")
            count(obj)
        else:
            return scan  # ends with a newline (or is empty)
    tail = line
    if not tail.strip():
        return scan
    obj = row(tail)
    if obj is not None:
        count(obj)
        scan.fix = b"\n"
        return scan
    try:
        json.loads(tail)
        complete_json = True
    except ValueError:
        complete_json = False
    if complete_json or not tail.lstrip().startswith(b"{"):
        raise ValueError(f"{path}:{lineno}: not a trace row; is --out the right file?")
    scan.fix, scan.cut_at = b"", offset
    return scan


def _mend_tail(path: str, scan: _Scan) -> None:
    if scan.fix is None:
        return
    if scan.fix:
        with open(path, "ab") as f:
            f.write(scan.fix)
        return
    with open(path, "rb+") as f:
        f.truncate(scan.cut_at)


def run(args: argparse.Namespace, log=print) -> dict:
    from .events import OutputLock
    from .prompt_sets import json_writable, read_jsonl
    from .recipe import SafetyConfig, parse_section, read_recipe_yaml
    from .template import PromptTemplate

    if args.config:
        raw, _, lines = read_recipe_yaml(args.config)
        safety = parse_section("safety", raw.get("safety"), args.config, lines)
    else:
        safety = SafetyConfig()
    rows = read_jsonl(args.prompts)
    api_key = api_key_from_env(args.api_key_env)  # checked before any request
    count = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.tokenizer)

        def count(text: str) -> int:
            return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    judge = Judge(count, safety.open_tag, safety.close_tag, safety.budget_mode, safety.budget_scale, args.min_budget_score)
    template = PromptTemplate.from_recipe(safety, args.system_prompt)
    stop = threading.Event()
    teacher = Teacher(args.teacher, args.model, args.timeout, args.retries, api_key,
                      args.temperature, args.max_tokens, stop)

    out_path, dropped_path = args.out, args.out + ".dropped.jsonl"
    for path in (out_path, dropped_path):
        if os.path.isdir(path):
            raise ValueError(f"{path}: is a folder; --out names the trace JSONL file to write (e.g. {os.path.join(path, 'traces.jsonl')})")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out_path}: cannot create its folder: {e.strerror or e}") from None
    # One run per OUT: a second one would ask every prompt again and write each row twice.
    try:
        out_lock = OutputLock.acquire(out_path + ".lock", f"{out_path}: another conscience.traces run is writing this file")
    except OSError as e:
        raise ValueError(f"{out_path}.lock: cannot write: {e.strerror or e}") from None
    try:
        return _run_locked(args, log, rows, safety, judge, template, teacher, stop, out_path, dropped_path, json_writable)
    finally:
        out_lock.release()


def _run_locked(args, log, rows, safety, judge, template, teacher, stop, out_path, dropped_path, json_writable) -> dict:
    # both files are read and checked before either is changed
    scan_out, scan_dropped = _scan_rows(out_path), _scan_rows(dropped_path, "reason")
    try:
        _mend_tail(out_path, scan_out)
        _mend_tail(dropped_path, scan_dropped)
    except OSError as e:
        raise ValueError(f"{out_path}: cannot write: {e.strerror or e}") from None
    done = scan_out.ids | scan_dropped.ids
    todo = [r for r in rows if r["id"] not in done]
    if args.limit is not None:
        todo = todo[: args.limit]
    log(f"conscience.traces: {len(rows)} prompts, {len(rows) - len([r for r in rows if r['id'] not in done])} done before, "
        f"{len(todo)} to ask {teacher.url}")

    lock = threading.Lock()
    kept_now = 0
    dropped_now: dict[str, int] = {}
    dropped_written: dict[str, int] = {}
    finishes: dict[str, int] = {}  # finish_reason of the no_content replies
    written: set[str] = set()  # ids recorded in either file by this run
    error: Optional[str] = None

    results: "queue.Queue[tuple[dict, Optional[Reply], Optional[TeacherError]]]" = queue.Queue()

    def ask(row: dict) -> None:
        budget = safety.clip_budget(row["budget"] if row["budget"] is not None else safety.default_budget(row["label"]))
        row = {**row, "budget": budget}
        try:
            results.put((row, teacher.complete(template.messages(row["prompt"], budget)), None))
        except TeacherError as e:
            results.put((row, None, e))
        except BaseException as e:  # noqa: BLE001 - never leave the main loop waiting for this row
            # the exception's text may hold the request's headers (the API key): redacted
            results.put((row, None, TeacherError(teacher.redact(f"teacher {teacher.url}: {type(e).__name__}: {e}"))))

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

        def record(row: dict, reply: Reply) -> None:
            nonlocal kept_now
            if reply.too_long:
                reason: Optional[str] = "too_long"
            elif reply.content is None:
                reason = "no_content"
            else:
                reason = judge.reason(reply.content, row["label"], row["budget"], reply.finish_reason)
            with lock:
                if reason is None:
                    block, answer = template.split(reply.content)
                    trace = {k: row[k] for k in ("id", "prompt", "label", "budget")}
                    trace.update(safety=block, answer=answer)
                    out.write(json.dumps(trace, ensure_ascii=False) + "\n")
                    out.flush()
                    kept_now += 1
                    written.add(row["id"])
                    return
                dropped_now[reason] = dropped_now.get(reason, 0) + 1
                if reason == "no_content":
                    why = reply.finish_reason or "none"
                    finishes[why] = finishes.get(why, 0) + 1
                if reason in RETRIED:
                    return  # not recorded: a rerun asks this prompt again
                completion = reply.content or ""
                entry = {"id": row["id"], "reason": reason, "completion": completion[:DROPPED_COMPLETION_CHARS]}
                if len(completion) > DROPPED_COMPLETION_CHARS:
                    entry["completion_chars"] = len(completion)  # kept in part: the file stays small
                # a reply with a lone surrogate is kept escaped ("\ud800"), which UTF-8 can hold
                dropped.write(json.dumps(entry, ensure_ascii=not json_writable(entry)) + "\n")
                dropped.flush()
                dropped_written[reason] = dropped_written.get(reason, 0) + 1
                written.add(row["id"])

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
                    row, reply, failure = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                in_flight -= 1
                if failure is not None:
                    error = error or str(failure)
                else:
                    record(row, reply)
                if error is None:
                    for row in it:
                        start(row)
                        in_flight += 1
                        if in_flight >= max(1, args.workers):
                            break
        finally:
            stop.set()

    if dropped_now.get("truncated"):
        log(f"conscience.traces: {dropped_now['truncated']} replies stopped at --max-tokens {args.max_tokens} (finish_reason "
            "length), their answers cut off; not recorded: rerun with a larger --max-tokens to ask them again")
    if dropped_now.get("too_long"):
        log(f"conscience.traces: {dropped_now['too_long']} replies were larger than {teacher.reply_limit} bytes "
            f"({REPLY_BYTES_PER_TOKEN} per --max-tokens, at least {MIN_REPLY_BYTES}) and were not read; not recorded, a "
            "rerun asks them again")
    if dropped_now.get("no_content"):
        shown = ", ".join(f"{k} {v}" for k, v in sorted(finishes.items()))
        log(f"conscience.traces: {dropped_now['no_content']} replies held no text (content null or no text part; "
            f"finish_reason: {shown}); not recorded, a rerun asks them again")
    dropped_total = dict(scan_dropped.counts)
    for k, v in dropped_written.items():
        dropped_total[k] = dropped_total.get(k, 0) + v
    report = {
        "out": os.path.abspath(out_path),
        "kept": kept_now,
        "dropped": dict(sorted(dropped_now.items())),
        "kept_total": scan_out.counts.get("kept", 0) + kept_now,
        "dropped_total": dict(sorted(dropped_total.items())),
        "remaining": len([r for r in rows if r["id"] not in done and r["id"] not in written]),
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
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds one request may take in all (connecting, waiting, reading the reply)")
    p.add_argument("--retries", type=_non_negative_int, default=2, help="retries of a request that failed or timed out")
    p.add_argument("--limit", type=int, default=None, help="ask about at most this many new prompts")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    args = p.parse_args(argv)

    from .events import OutputBusy
    from .prompt_sets import DataError
    from .recipe import RecipeError

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        report = run(args, log)
    except (DataError, RecipeError, ValueError, OutputBusy) as e:
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
