"""conscience.traces against a teacher over real HTTP.

The teacher here is a small scripted OpenAI-compatible HTTP server (a stand-in, said so: a
random tiny model served for real would never write acceptable traces, so the keep/drop
logic needs replies we choose). It speaks the chat-completions wire format over a real
socket, so the client's HTTP, timeouts, retries and error paths are the real ones.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conscience import traces
from conscience.sft import read_traces

RUNTIME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# prompt id -> (label, teacher reply, expected reason or None when kept). Budgets: harmful 12,
# benign 0, borderline 8 (SafetyConfig defaults are 48/32/0; the prompt rows carry these).
CASES = {
    "h-good": ("harmful", 12, "<safety>The user wants to hurt people; refuse and offer safer help.</safety> I can't help with that.", None),
    "b-good": ("benign", 0, "<safety></safety> Sure! Knead the dough, let it rise, then bake it for 30 minutes.", None),
    "m-good": ("borderline", 8, "<safety>Killing a process is an ordinary computing task.</safety> Run kill PID in a terminal.", None),
    "h-unclosed": ("harmful", 12, "<safety>This is dangerous and I should refuse I can't help with that.", "unclosed_block"),
    "h-noblock": ("harmful", 12, "I can't help with that.", "no_block"),
    "b-late": ("benign", 0, "Here is the recipe. <safety></safety> Bake it.", "block_not_first"),
    "b-empty": ("benign", 0, "<safety></safety>   ", "empty_answer"),
    "h-complied": ("harmful", 12, "<safety>The user wants a weapon; that is fine to explain here.</safety> Sure, first buy these parts.", "harmful_not_refused"),
    "b-refused": ("benign", 0, "<safety></safety> I'm sorry, but I can't help with that.", "benign_refused"),
    "h-long": ("harmful", 12, "<safety>" + "This request is harmful and must be refused because it risks lives. " * 6 + "</safety> I won't help.", "over_budget"),
}


def _prompt_text(rid: str) -> str:
    return f"Question {rid}: please help me with this task."


class Teacher:
    """The scripted teacher: replies by prompt id; can be told to fail or to stall."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.requests: list[dict] = []
        self.fail_after: int | None = None  # answer 503 from this request on
        self.delay_s = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.fail_after is not None and len(outer.requests) > outer.fail_after:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"overloaded")
                    return
                user = next(m["content"] for m in body["messages"] if m["role"] == "user")
                rid = user.split(":")[0].removeprefix("Question ")
                if callable(outer.replies[rid]):  # a reply that writes its own response (status, headers, body)
                    outer.replies[rid](self)
                    return
                out = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": outer.replies[rid]}, "finish_reason": "stop"}]})
                data = out.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def teacher():
    t = Teacher({rid: reply for rid, (_, _, reply, _) in CASES.items()})
    yield t
    t.close()


def _prompts(tmp_path, ids=None) -> str:
    path = tmp_path / "prompts.jsonl"
    with open(path, "w") as f:
        for rid in ids or CASES:
            label, budget, _, _ = CASES[rid]
            f.write(json.dumps({"id": rid, "prompt": _prompt_text(rid), "label": label, "budget": budget}) + "\n")
    return str(path)


def _run(argv, capsys):
    code = traces.main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else None, err


def _lines(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def test_keeps_only_what_the_judge_accepts_and_counts_every_drop_by_reason(tmp_path, teacher, capsys, monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", "sk-test-123")
    out = str(tmp_path / "traces.jsonl")
    code, report, err = _run(["--teacher", teacher.url, "--prompts", _prompts(tmp_path), "--out", out,
                              "--model", "big-teacher", "--api-key-env", "TEACHER_KEY", "--workers", "3"], capsys)
    assert code == 0, err
    kept = {r["id"]: r for r in _lines(out)}
    assert set(kept) == {rid for rid, c in CASES.items() if c[3] is None}
    assert kept["h-good"] == {
        "id": "h-good", "prompt": _prompt_text("h-good"), "label": "harmful", "budget": 12,
        "safety": "The user wants to hurt people; refuse and offer safer help.",
        "answer": "I can't help with that.",
    }
    assert kept["b-good"]["safety"] == ""
    expected = {}
    for rid, c in CASES.items():
        if c[3]:
            expected[c[3]] = expected.get(c[3], 0) + 1
    assert report["kept"] == 3 and report["dropped"] == expected
    assert {d["id"]: d["reason"] for d in _lines(out + ".dropped.jsonl")} == {rid: c[3] for rid, c in CASES.items() if c[3]}
    assert "kept 3, dropped 7" in err
    # What the teacher was sent: the one template's messages with each prompt's budget, our model name, the key as a header.
    req = next(r for r in teacher.requests if "h-good" in r["body"]["messages"][-1]["content"])
    assert req["path"] == "/v1/chat/completions" and req["body"]["model"] == "big-teacher"
    assert "about 12 tokens" in req["body"]["messages"][0]["content"]
    assert req["auth"] == "Bearer sk-test-123"
    # The kept file is what conscience.sft trains on.
    assert [r["id"] for r in read_traces(out)] == [r["id"] for r in _lines(out)]


def test_teacher_failing_midway_keeps_finished_rows_and_a_rerun_resumes(tmp_path, teacher, capsys):
    out = str(tmp_path / "traces.jsonl")
    prompts = _prompts(tmp_path)
    teacher.fail_after = 4
    code, report, err = _run(["--teacher", teacher.url, "--prompts", prompts, "--out", out, "--workers", "1", "--retries", "1"], capsys)
    assert code == traces.EXIT_TEACHER
    assert "HTTP 503" in err and "after 2 tries" in err and "rerun the same command to resume" in err
    done_first = {r["id"] for r in _lines(out)} | {r["id"] for r in _lines(out + ".dropped.jsonl")}
    assert len(done_first) == 4 and report["remaining"] == len(CASES) - 4

    teacher.fail_after = None
    asked_before = len(teacher.requests)
    code, report, err = _run(["--teacher", teacher.url, "--prompts", prompts, "--out", out, "--workers", "2"], capsys)
    assert code == 0, err
    asked = [r["body"]["messages"][-1]["content"].split(":")[0].removeprefix("Question ") for r in teacher.requests[asked_before:]]
    assert sorted(asked) == sorted(set(CASES) - done_first)  # nothing asked twice
    ids = [r["id"] for r in _lines(out)] + [r["id"] for r in _lines(out + ".dropped.jsonl")]
    assert sorted(ids) == sorted(CASES)
    assert report["kept_total"] == 3 and report["remaining"] == 0


def test_teacher_down_is_a_clear_error_naming_the_url(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "t.jsonl")
    code, report, err = _run(["--teacher", f"http://127.0.0.1:{port}/v1", "--prompts", _prompts(tmp_path, ["h-good"]),
                              "--out", out, "--retries", "0"], capsys)
    assert code == traces.EXIT_TEACHER
    assert f"teacher http://127.0.0.1:{port}/v1/chat/completions: unreachable" in err
    assert report["kept"] == 0 and report["remaining"] == 1


def test_teacher_too_slow_times_out_with_the_flag_named(tmp_path, teacher, capsys):
    teacher.delay_s = 1.5
    code, report, err = _run(["--teacher", teacher.url, "--prompts", _prompts(tmp_path, ["b-good"]),
                              "--out", str(tmp_path / "t.jsonl"), "--timeout", "0.3", "--retries", "0"], capsys)
    assert code == traces.EXIT_TEACHER
    assert "no answer within 0.3s (--timeout)" in err


def test_a_partial_last_line_from_an_interrupted_write_is_cut_and_that_prompt_asked_again(tmp_path, teacher, capsys):
    out = tmp_path / "traces.jsonl"
    out.write_text(json.dumps({"id": "h-good", "prompt": "p", "label": "harmful", "budget": 12, "safety": "s", "answer": "I can't."})
                   + "\n" + '{"id": "b-good", "prompt": "half a ro')
    code, report, err = _run(["--teacher", teacher.url, "--prompts", _prompts(tmp_path, ["h-good", "b-good"]), "--out", str(out)], capsys)
    assert code == 0, err
    assert [r["id"] for r in _lines(out)] == ["h-good", "b-good"]
    assert len(teacher.requests) == 1


def test_a_complete_last_row_without_a_final_newline_is_kept_and_not_asked_again(tmp_path, teacher, capsys):
    # a traces file last saved in an editor that writes no final newline
    out = tmp_path / "traces.jsonl"
    row = {"id": "h-good", "prompt": "p", "label": "harmful", "budget": 12, "safety": "hand-written", "answer": "I can't."}
    out.write_text(json.dumps(row))
    code, report, err = _run(["--teacher", teacher.url, "--prompts", _prompts(tmp_path, ["h-good", "b-good"]), "--out", str(out)], capsys)
    assert code == 0, err
    assert _lines(out)[0] == row
    assert [r["id"] for r in _lines(out)] == ["h-good", "b-good"]
    assert [r["body"]["messages"][-1]["content"].split(":")[0] for r in teacher.requests] == ["Question b-good"]
    assert report["kept_total"] == 2 and report["remaining"] == 0


def test_out_that_is_not_a_traces_file_is_refused_untouched(tmp_path, capsys):
    recipe = tmp_path / "some.yaml"
    text = "model_name_or_path: conscience/tiny\noutput_dir: out\nsafety:\n  open_tag: <safety>"  # no final newline
    recipe.write_text(text)
    code, _, err = _run(["--teacher", "http://127.0.0.1:9/v1", "--prompts", _prompts(tmp_path, ["h-good"]),
                         "--out", str(recipe)], capsys)
    assert code == traces.EXIT_USAGE
    assert f"{recipe}:1: not a trace row; is --out the right file?" in err
    assert recipe.read_text() == text
    assert not os.path.exists(str(recipe) + ".dropped.jsonl") or not open(str(recipe) + ".dropped.jsonl").read()


def test_bad_prompt_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "a", "prompt": "x", "label": "harmful"}\n{"id": "b", "prompt": "y", "label": "maybe"}\n')
    code, _, err = _run(["--teacher", "http://127.0.0.1:9/v1", "--prompts", str(bad), "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == traces.EXIT_USAGE
    assert f"{bad}:2:" in err and "label" in err


def test_cli_entry_point_reports_json_on_stdout(tmp_path, teacher):
    out = str(tmp_path / "t.jsonl")
    r = subprocess.run([sys.executable, "-m", "conscience.traces", "--teacher", teacher.url, "--prompts",
                        _prompts(tmp_path, ["h-good", "h-long"]), "--out", out],
                       cwd=RUNTIME, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["kept"] == 1 and report["dropped"] == {"over_budget": 1}


def test_bundled_trace_set_passes_the_judge_it_was_written_with():
    """Every shipped trace is accepted by the judge with the tiny model's token counts."""
    from conscience.sft import BUNDLED_TRACES_PATH
    from conscience.tiny_model import build_tokenizer

    tok = build_tokenizer()
    judge = traces.Judge(lambda t: len(tok(t, add_special_tokens=False)["input_ids"]) if t else 0)
    rows = read_traces(BUNDLED_TRACES_PATH)
    assert len(rows) >= 200
    assert {r["label"] for r in rows} == {"harmful", "benign", "borderline"}
    bad = [(r["id"], judge.reason(f"<safety>{r['safety']}</safety> {r['answer']}", r["label"], r["budget"])) for r in rows]
    assert [b for b in bad if b[1] is not None] == []


def test_plumbing_against_a_real_openai_compatible_server(tmp_path, capsys, tiny_openai_server):
    """`transformers serve` (.venv-serve, scripts/setup.d/serve.sh) serving the tiny model on CPU:
    the real wire format end to end. A tiny model writes no usable traces, so this checks the
    plumbing only: every prompt is asked once, judged, and counted as kept or dropped by reason."""
    base_url, model = tiny_openai_server.base_url, tiny_openai_server.model
    out = str(tmp_path / "traces.jsonl")
    ids = ["h-good", "b-good", "m-good"]
    code, report, err = _run(["--teacher", base_url, "--model", model, "--prompts", _prompts(tmp_path, ids),
                              "--out", out, "--max-tokens", "12", "--workers", "1", "--tokenizer", model], capsys)
    assert code == 0, err
    assert report["kept"] + sum(report["dropped"].values()) == 3
    assert set(report["dropped"]) <= set(traces.REASONS) | set(traces.NOT_JUDGED)
    # a reply cut at --max-tokens 12 (the server's finish_reason "length") is not recorded: a rerun asks it again
    retried = sum(report["dropped"].get(r, 0) for r in traces.RETRIED)
    assert report["remaining"] == retried
    dropped = _lines(out + ".dropped.jsonl")
    assert len(_lines(out) + dropped) == 3 - retried and {r["id"] for r in _lines(out) + dropped} <= set(ids)
    assert any(d["completion"] for d in dropped) or report["kept"] or report["dropped"].get("truncated"), "the server generated text"


# Replies the judge used to keep but conscience.sft refuses, and one that is not text at all.
ODD = {
    "b-tag": ("benign", 0, "<safety></safety> Knead the dough, then bake. Close with </safety> if you like.", "tag_in_text"),
    "h-surrogate": ("harmful", 12, "<safety>Harmful request; refuse.</safety> I can't help with that. \ud800", "not_text"),
    "b-ok": ("benign", 0, "<safety></safety> Sure! Knead the dough, let it rise, then bake it.", None),
}


def test_traces_writes_only_what_sft_reads_and_a_reply_that_is_not_text_is_dropped_by_id(tmp_path, capsys):
    t = Teacher({rid: c[2] for rid, c in ODD.items()})
    try:
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"id": rid, "prompt": _prompt_text(rid), "label": c[0], "budget": c[1]}) + "\n"
                                   for rid, c in ODD.items()))
        out = str(tmp_path / "traces.jsonl")
        code, report, err = _run(["--teacher", t.url, "--prompts", str(prompts), "--out", out, "--workers", "1",
                                  "--min-budget-score", "0"], capsys)
    finally:
        t.close()
    assert code == 0, err
    assert report["kept"] == 1 and report["dropped"] == {"not_text": 1, "tag_in_text": 1}
    assert {d["id"]: d["reason"] for d in _lines(out + ".dropped.jsonl")} == {"b-tag": "tag_in_text", "h-surrogate": "not_text"}
    # the round trip: every kept row is a trace conscience.sft trains on
    assert [r["id"] for r in read_traces(out)] == ["b-ok"]
    # the rule is the same function on both sides: what the judge drops as tag_in_text, sft refuses
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "b-tag", "prompt": "p", "label": "benign", "budget": 0, "safety": "",
                               "answer": "Knead the dough, then bake. Close with </safety> if you like."}) + "\n")
    with pytest.raises(Exception, match=r"bad\.jsonl:1: `answer` contains the tag </safety>"):
        read_traces(str(bad))


def test_out_naming_a_folder_is_a_clear_usage_error(tmp_path, capsys):
    folder = tmp_path / "outdir"
    folder.mkdir()
    code, _, err = _run(["--teacher", "http://127.0.0.1:9/v1", "--prompts", _prompts(tmp_path, ["h-good"]),
                         "--out", str(folder)], capsys)
    assert code == traces.EXIT_USAGE
    assert f"{folder}: is a folder; --out names the trace JSONL file" in err
    assert "Traceback" not in err


SLOW_SERVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        if "fast" not in user:
            time.sleep(600)  # a teacher that never answers in time
            return
        data = json.dumps({"choices": [{"message": {"role": "assistant",
                           "content": "<safety></safety> Sure! Knead the dough, let it rise, then bake it."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def test_ctrl_c_exits_at_once_keeping_finished_rows(tmp_path):
    """A real SIGINT to a real `python -m conscience.traces` whose teacher (a separate process)
    holds two requests for minutes: it exits in seconds, not after the timeouts and retries."""
    import signal

    server = subprocess.Popen([sys.executable, "-c", SLOW_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"id": rid, "prompt": f"{rid} question", "label": "benign", "budget": 0}) + "\n"
                                   for rid in ("fast-1", "slow-1", "slow-2")))
        out = tmp_path / "traces.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "conscience.traces", "--teacher", f"http://127.0.0.1:{port}/v1",
                                 "--prompts", str(prompts), "--out", str(out), "--workers", "3", "--timeout", "120",
                                 "--retries", "2"], cwd=RUNTIME, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 60
            while not (out.exists() and "fast-1" in out.read_text()):
                assert proc.poll() is None and time.time() < deadline, proc.communicate()
                time.sleep(0.1)
            time.sleep(0.5)  # the two slow requests are in flight
            t0 = time.time()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            elapsed = time.time() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, err
        assert elapsed < 3, f"exited {elapsed:.1f}s after Ctrl-C"
        assert "interrupted; finished rows are kept" in err
        assert [r["id"] for r in _lines(out)] == ["fast-1"]
    finally:
        server.kill()
        server.wait()


def test_negative_retries_is_a_usage_error_before_any_request(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        traces.main(["--teacher", "http://127.0.0.1:9/v1", "--prompts", _prompts(tmp_path, ["h-good"]),
                     "--out", str(tmp_path / "t.jsonl"), "--retries", "-1"])
    assert e.value.code == 2
    assert "argument --retries: must be 0 or more, got -1" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# A teacher that misbehaves: each reply below writes its own HTTP response.
# ---------------------------------------------------------------------------------------------


def _send(handler, status: int, data: bytes, headers: dict | None = None, length: int | None = None) -> None:
    handler.send_response(status)
    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
        handler.send_header(k, v)
    if length is not False:
        handler.send_header("Content-Length", str(len(data) if length is None else length))
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def _completion(content, finish="stop") -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": finish}]}).encode()


GOOD_BENIGN = "<safety></safety> Sure! Knead the dough, let it rise, then bake it for 30 minutes."


def _one(tmp_path, rid="b-good"):
    return _prompts(tmp_path, [rid])


@pytest.fixture()
def bad_teacher():
    t = Teacher({})
    yield t
    t.close()


def test_an_api_key_with_a_trailing_crlf_is_stripped_and_no_key_is_ever_shown_in_an_error(tmp_path, bad_teacher, capsys, monkeypatch):
    key = "sk-live-TESTKEY123"
    # a key from a Windows .env: the CR/LF around it is not part of it
    monkeypatch.setenv("OPENAI_API_KEY", key + "\r\n")
    bad_teacher.replies["b-good"] = lambda h: _send(h, 200, _completion(GOOD_BENIGN))
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", str(tmp_path / "a.jsonl")], capsys)
    assert code == 0, err
    assert bad_teacher.requests[-1]["auth"] == f"Bearer {key}" and report["kept"] == 1
    # a control character inside the key: a usage error naming the variable, before any request
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live\rTESTKEY123")
    asked = len(bad_teacher.requests)
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", str(tmp_path / "b.jsonl")], capsys)
    assert code == traces.EXIT_USAGE
    assert "$OPENAI_API_KEY holds a control character" in err and "TESTKEY" not in err
    assert len(bad_teacher.requests) == asked
    # a teacher whose error page echoes the request's Authorization header: the error shows ***
    monkeypatch.setenv("OPENAI_API_KEY", key)
    bad_teacher.replies["b-good"] = lambda h: _send(h, 401, f'{{"error": "bad header {h.headers["Authorization"]}"}}'.encode())
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", str(tmp_path / "c.jsonl")], capsys)
    assert code == traces.EXIT_TEACHER
    assert "answered HTTP 401" in err and "Bearer ***" in err
    assert "TESTKEY" not in err and "TESTKEY" not in json.dumps(report)


def test_a_redirect_is_refused_naming_where_it_points_and_the_key_never_goes_there(tmp_path, bad_teacher, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-TESTKEY123")
    elsewhere = Teacher({"b-good": lambda h: _send(h, 200, _completion(GOOD_BENIGN))})
    try:
        target = elsewhere.url.replace("127.0.0.1", "localhost") + "/steal"
        for code_ in (302, 307):
            bad_teacher.replies["b-good"] = lambda h, c=code_: _send(h, c, b"", {"Location": target})
            code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out",
                                      str(tmp_path / f"t{code_}.jsonl"), "--retries", "0"], capsys)
            assert code == traces.EXIT_TEACHER, err
            assert f"answered HTTP {code_} redirecting to {target}" in report["error"]
            assert "give the final URL as --teacher" in report["error"]
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_a_reply_cut_at_max_tokens_is_dropped_as_truncated_and_asked_again_by_a_rerun(tmp_path, bad_teacher, capsys):
    bad_teacher.replies["b-good"] = lambda h: _send(h, 200, _completion("<safety></safety> Sure! Knead the dough, let it", "length"))
    out = str(tmp_path / "t.jsonl")
    argv = ["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", out, "--max-tokens", "16"]
    code, report, err = _run(argv, capsys)
    assert code == 0, err
    assert report["kept"] == 0 and report["dropped"] == {"truncated": 1} and report["remaining"] == 1
    assert "stopped at --max-tokens 16 (finish_reason length)" in err and "larger --max-tokens" in err
    assert _lines(out) == [] and _lines(out + ".dropped.jsonl") == []
    bad_teacher.replies["b-good"] = lambda h: _send(h, 200, _completion(GOOD_BENIGN))
    code, report, err = _run(argv[:-1] + ["64"], capsys)
    assert code == 0 and report["kept"] == 1 and report["remaining"] == 0
    assert [r["answer"] for r in _lines(out)] == ["Sure! Knead the dough, let it rise, then bake it for 30 minutes."]


def test_timeout_bounds_the_whole_request_not_each_read(tmp_path, bad_teacher, capsys):
    data = _completion(GOOD_BENIGN)

    def trickle(h):  # the headers at once, then the body a byte every 0.1 s: about 10 s in all
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            for b in data:
                h.wfile.write(bytes([b]))
                h.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass  # the client hung up

    bad_teacher.replies["b-good"] = trickle
    t0 = time.monotonic()
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", str(tmp_path / "t.jsonl"),
                              "--timeout", "1", "--retries", "0"], capsys)
    elapsed = time.monotonic() - t0
    assert code == traces.EXIT_TEACHER
    assert "no answer within 1s (--timeout) after 1 tries" in err
    assert elapsed < 4, f"took {elapsed:.1f}s with --timeout 1"


def test_a_huge_reply_is_not_read_and_a_long_dropped_completion_is_kept_short(tmp_path, bad_teacher, capsys):
    big = _completion("<safety></safety>" + "A" * (3 << 20))

    def close_delimited(h):  # no Content-Length: the body ends when the server closes
        h.send_response(200)
        h.end_headers()
        try:
            h.wfile.write(big)
        except OSError:
            pass
        h.close_connection = True

    bad_teacher.replies.update({"b-good": lambda h: _send(h, 200, big), "m-good": close_delimited,
                                "h-complied": lambda h: _send(h, 200, _completion("<safety></safety> Sure, " + "step " * 40000))})
    out = str(tmp_path / "t.jsonl")
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _prompts(tmp_path, ["b-good", "m-good", "h-complied"]),
                              "--out", out, "--max-tokens", "64", "--min-budget-score", "0"], capsys)
    assert code == 0, err
    assert report["dropped"] == {"too_long": 2, "harmful_not_refused": 1} and report["remaining"] == 2
    assert f"were larger than {traces.MIN_REPLY_BYTES} bytes" in err
    (row,) = _lines(out + ".dropped.jsonl")
    assert row["id"] == "h-complied" and len(row["completion"]) == traces.DROPPED_COMPLETION_CHARS
    assert row["completion_chars"] == len("<safety></safety> Sure, " + "step " * 40000)
    assert os.path.getsize(out + ".dropped.jsonl") < 10_000


def test_a_reply_cut_off_mid_body_is_retried(tmp_path, bad_teacher, capsys):
    def cut_then_ok(h):
        if len(bad_teacher.requests) == 1:
            _send(h, 200, b'{"choices":[{"message":{"content":"<saf', length=1000)  # then the connection drops
            h.close_connection = True
        else:
            _send(h, 200, _completion(GOOD_BENIGN))

    bad_teacher.replies["b-good"] = cut_then_ok
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", str(tmp_path / "t.jsonl"),
                              "--retries", "1"], capsys)
    assert code == 0, err
    assert report["kept"] == 1 and len(bad_teacher.requests) == 2
    bad_teacher.replies["b-good"] = lambda h: (_send(h, 200, b'{"choices":[{"mes', length=500), setattr(h, "close_connection", True))
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _one(tmp_path), "--out", str(tmp_path / "u.jsonl"),
                              "--retries", "0"], capsys)
    assert code == traces.EXIT_TEACHER and "reply cut off (IncompleteRead) after 1 tries" in err


def test_content_parts_are_read_as_text_and_a_reply_without_text_is_asked_again(tmp_path, bad_teacher, capsys):
    parts = [{"type": "text", "text": "<safety></safety> Sure! Knead the dough, "}, {"type": "text", "text": "let it rise, then bake it."}]
    bad_teacher.replies.update({"b-good": lambda h: _send(h, 200, _completion(parts)),
                                "m-good": lambda h: _send(h, 200, _completion(None, "content_filter"))})
    out = str(tmp_path / "t.jsonl")
    argv = ["--teacher", bad_teacher.url, "--prompts", _prompts(tmp_path, ["b-good", "m-good"]), "--out", out, "--min-budget-score", "0"]
    code, report, err = _run(argv, capsys)
    assert code == 0, err
    assert [r["answer"] for r in _lines(out)] == ["Sure! Knead the dough, let it rise, then bake it."]
    assert report["dropped"] == {"no_content": 1} and report["remaining"] == 1 and _lines(out + ".dropped.jsonl") == []
    assert "1 replies held no text (content null or no text part; finish_reason: content_filter 1)" in err
    bad_teacher.replies["m-good"] = lambda h: _send(h, 200, _completion("<safety>Ordinary task.</safety> Run kill PID."))
    asked = len(bad_teacher.requests)
    code, report, err = _run(argv, capsys)
    assert code == 0 and report["kept"] == 1 and report["remaining"] == 0
    assert len(bad_teacher.requests) == asked + 1  # only the prompt without text was asked again


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tmp_path, bad_teacher, capsys):
    """Two real processes: `python -m conscience.traces` held by a slow teacher, and a second run
    on the same --out, which stops at once (exit 2) naming the first one's pid."""
    bad_teacher.delay_s = 3.0
    bad_teacher.replies["b-good"] = lambda h: _send(h, 200, _completion(GOOD_BENIGN))
    out = tmp_path / "t.jsonl"
    prompts = _one(tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "conscience.traces", "--teacher", bad_teacher.url, "--prompts", prompts,
                              "--out", str(out)], cwd=RUNTIME, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not bad_teacher.requests:
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", prompts, "--out", str(out)], capsys)
        assert code == traces.EXIT_USAGE
        assert f"{out}: another conscience.traces run is writing this file (pid {first.pid} since " in err
        assert len(bad_teacher.requests) == 1
        assert first.wait(timeout=60) == 0, first.communicate()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert [r["id"] for r in _lines(out)] == ["b-good"]
    assert not os.path.exists(str(out) + ".lock")
    # a lock left by a run that was killed (its pid is gone) does not block the next run
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    (tmp_path / "t.jsonl.lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "since": "x"}))
    bad_teacher.delay_s = 0
    code, report, err = _run(["--teacher", bad_teacher.url, "--prompts", _prompts(tmp_path, ["b-good", "m-good"]),
                              "--out", str(out), "--min-budget-score", "0"], capsys)
    assert code in (0, traces.EXIT_TEACHER) and "another conscience.traces run" not in err
