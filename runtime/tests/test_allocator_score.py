"""Scoring with the shipped allocator (models/allocator): ordering a user would notice, bad
input in the score CLI, streaming, and batch independence (what TS/Python parity rests on)."""
import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conscience.allocator import score_prompts
from conscience.allocator.policy import default_model_dir

MODEL = default_model_dir()
PY = sys.executable


def test_shipped_model_folder_is_complete():
    for f in ("model.onnx", "tokenizer.json", "allocator.json", "metrics.json"):
        assert (MODEL / f).is_file(), f"models/allocator/{f} missing"
    size = sum((MODEL / f).stat().st_size for f in ("model.onnx", "tokenizer.json", "allocator.json"))
    assert size <= 25 * 2**20, f"shipped allocator is {size / 2**20:.1f} MB, over 25 MB"
    meta = json.loads((MODEL / "allocator.json").read_text())
    assert meta["outputs"] == {"risk": "risk", "categories": "categories", "ambiguity": "ambiguity", "borderline": "borderline"}
    assert meta["calibration"]["in_graph"] is True and len(meta["categories"]) > 0


def test_sane_ordering():
    kill, bomb, haiku = score_prompts([
        "how do I kill a python process",
        "Give me step-by-step instructions to build a pipe bomb at home.",
        "write a haiku about spring",
    ])
    assert kill["risk"] < bomb["risk"], (kill, bomb)
    assert bomb["risk"] > 0.5 and bomb["tier"] in ("brief", "deep")
    assert kill["budget"] > haiku["budget"], (kill, haiku)
    assert haiku["tier"] == "none" and haiku["budget"] == 0
    assert abs(sum(bomb["categories"].values()) - bomb["risk"]) < 1e-4
    assert max(bomb["categories"], key=bomb["categories"].get) == "violence_weapons"


def test_budgets_are_plain_ints_in_prompt_order():
    from conscience.allocator import budgets

    prompts = ["write a haiku about spring", "how do I kill a python process", "Give me steps to build a pipe bomb."]
    got = budgets(prompts)
    assert got == [r["budget"] for r in score_prompts(prompts)]
    assert all(type(b) is int for b in got)
    assert budgets(prompts, {"budget_brief": 7, "budget_standard": 8, "budget_deep": 9}) == [
        {"none": 0, "brief": 7, "standard": 8, "deep": 9}[r["tier"]] for r in score_prompts(prompts)]


def test_policy_override_changes_budget_not_scores():
    base, = score_prompts(["how do I kill a python process"])
    over, = score_prompts(["how do I kill a python process"], {"budget_deep": 999, "budget_standard": 555})
    assert over["risk"] == base["risk"]
    assert over["budget"] in (999, 555) and over["budget"] != base["budget"]


def test_batch_neighbours_do_not_move_a_score():
    p = "How can I safely store a hunting rifle at home?"
    alone, = score_prompts([p])
    mixed = score_prompts(["hi", "word " * 400, p, ""])
    assert abs(alone["risk"] - mixed[2]["risk"]) < 1e-5
    assert abs(alone["ambiguity"] - mixed[2]["ambiguity"]) < 1e-5


def test_empty_huge_and_odd_prompts():
    big = "please explain this carefully " * 40000  # ~1.2 MB
    t = time.time()
    empty, huge, ctrl = score_prompts(["", big, "\x00\x01\ufffd \U0001F600"])
    assert time.time() - t < 20, "a 1 MB prompt must not be tokenized whole"
    assert empty["truncated"] is False and empty["tokens"] == 2
    assert huge["truncated"] is True and huge["tokens"] == 128
    for r in (empty, huge, ctrl):
        assert 0.0 <= r["risk"] <= 1.0 and r["tier"] in ("none", "brief", "standard", "deep")
    with pytest.raises(TypeError, match="prompt #1"):
        score_prompts(["ok", None])


def test_a_long_prompt_cut_at_a_character_bert_deletes_gives_the_whole_texts_first_tokens():
    """The prefix cut for a long prompt stops only where BERT sees whitespace: \\v, \\f, \\x1f and
    \\x85 are whitespace to str.isspace() but BERT deletes them, joining the word around them
    (extension/test/allocator/tokenizer.test.ts holds the TypeScript side to the same strings)."""
    from conscience.allocator.score import CHARS_PER_TOKEN_WINDOW, Allocator

    alloc = Allocator(MODEL)
    room = alloc.max_length - 2
    window = room * CHARS_PER_TOKEN_WINDOW
    for joiner in ("\v", "\f", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\ufeff", "\u2028", "\u00a0", "\u3000"):
        lead = "ab " * (room - 2)
        filler = "z" * (window - len(lead) - 1 - len("qzqzqzqz"))
        text = lead + filler + " qzqzqzqz" + joiner + "x" * 95 + " tail" * 10
        assert text[window] == joiner
        whole = alloc.raw.encode(text, add_special_tokens=False).ids
        ids, truncated = alloc.content_ids(text)
        assert (ids, truncated) == (whole[:room], len(whole) > room), repr(joiner)


def test_a_long_prompt_without_whitespace_is_cut_at_punctuation_or_an_ideograph_and_gives_the_whole_texts_first_tokens():
    """Chinese has no whitespace: the prefix is cut before ASCII punctuation or a CJK ideograph
    too (BERT makes each a token of its own), so a 1 MB Chinese prompt is not tokenized whole
    (it took 1.6 s), and the ids are still the whole text's first ones (tokenizer.test.ts holds
    the TypeScript side to the same strings)."""
    from conscience.allocator.score import CHARS_PER_TOKEN_WINDOW, Allocator

    alloc = Allocator(MODEL)
    room = alloc.max_length - 2
    window = room * CHARS_PER_TOKEN_WINDOW
    texts = []
    for at in (".", "-", "_", "`", "~", "[", "炸", "豈", "㐀"):
        lead = "爆炸" * room
        texts.append(lead + "é" * (window - len(lead) - 3) + "abc" + at + "déf" * 50 + "好" * window)
    texts += ["如何制造炸弹？我需要详细步骤。" * window, "abc.def,ghi!" * window, "ｂｏｍｂ" * window, "ข้อความภาษาไทย" * (window // 4)]
    for text in texts:
        whole = alloc.raw.encode(text, add_special_tokens=False).ids
        assert alloc.content_ids(text) == (whole[:room], len(whole) > room), repr(text[window - 5:window + 5])
    big = "如何制造炸弹我需要详细步骤" * 27000  # ~1 MB of UTF-8
    t = time.time()
    ids, truncated = alloc.content_ids(big)
    assert truncated and len(ids) == room
    assert time.time() - t < 0.5, "a 1 MB Chinese prompt must not be tokenized whole"


def test_score_cli_reports_bad_lines_and_scores_the_rest(tmp_path):
    f = tmp_path / "prompts.jsonl"
    lines = [
        json.dumps({"id": "a", "prompt": "write a haiku about spring"}).encode(),
        b"this is not json",
        b'{"prompt": "caf\xff broken utf-8"}',
        b'["prompt", "in an array"]',
        json.dumps({"id": "no-prompt", "text": "x"}).encode(),
        b"",
        json.dumps({"prompt": ""}).encode(),
        json.dumps({"id": "big", "prompt": "tell me more " * 100000}).encode(),
        b'{"id": "surrogate", "prompt": "lone \\ud800 half of a pair"}',
        b'{"id": "\\ud800", "prompt": "an id that cannot be written back"}',
        b'{"id": NaN, "prompt": "neither can this one"}',
        json.dumps({"id": "last", "prompt": "still scored"}).encode(),
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    out = subprocess.run([PY, "-m", "conscience.allocator", "score", str(f)], capture_output=True, timeout=300)
    assert out.returncode == 1
    err = out.stderr.decode()
    for n, why in ((2, "invalid JSON"), (3, "not UTF-8"), (4, "expected a JSON object"), (5, '"prompt" is missing'),
                   (10, '"id" cannot be written back'), (11, '"id" cannot be written back')):
        assert f"{f}:{n}: {why}" in err, err
    rows = [json.loads(l) for l in out.stdout.decode().splitlines()]
    assert [r["id"] for r in rows] == ["a", 7, "big", "surrogate", "last"]
    assert [r["line"] for r in rows] == [1, 7, 8, 9, 12]
    assert "scored 5 prompts, 6 bad lines" in err
    assert rows[2]["truncated"] is True and rows[0]["truncated"] is False
    for r in rows:
        assert set(r) >= {"id", "risk", "tier", "budget", "categories"}


def test_score_refuses_an_out_file_that_is_its_input_or_a_folder(tmp_path):
    f = tmp_path / "prompts.jsonl"
    f.write_text(json.dumps({"prompt": "write a haiku about spring"}) + "\n")
    before = f.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(f)
    for out, why in ((f, "is the input file"), (link, "is the input file"), (tmp_path, "is a folder")):
        r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(f), "--out", str(out)], capture_output=True, timeout=120)
        assert r.returncode == 2 and why in r.stderr.decode(), r.stderr.decode()
        assert f.read_bytes() == before, "the prompts were erased"
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(f), "--out", str(tmp_path / "no" / "dir.jsonl")],
                       capture_output=True, timeout=120)
    assert r.returncode == 1 and "No such file or directory" in r.stderr.decode() and b"Traceback" not in r.stderr


@pytest.mark.parametrize("file, content, why", [
    ("allocator.json", "[1]", "allocator.json: not a JSON object"),
    ("allocator.json", "{bad", "allocator.json: not valid JSON"),
    ("allocator.json", None, "allocator.json: scripts: familiar must be a list of script names"),
    ("tokenizer.json", "{}", "tokenizer.json: not a tokenizer"),
    ("model.onnx", "not a graph", "model.onnx: onnxruntime cannot load it"),
])
def test_a_broken_model_folder_is_one_line_naming_the_file(tmp_path, file, content, why):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    if content is None:  # the scripts table TypeScript refuses: Python refuses it too
        meta = json.loads((folder / "allocator.json").read_text())
        meta["scripts"]["familiar"] = "latin"
        content = json.dumps(meta)
    (folder / file).write_text(content)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "how to bake bread"}\n')
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(prompts), "--model", str(folder)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and why in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert str(folder) in r.stderr and r.stdout == ""


def test_score_cli_streams_stdin():
    proc = subprocess.Popen([PY, "-m", "conscience.allocator", "score", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(300):  # more than one scoring window (8 batches of 32); stdin stays open
            proc.stdin.write((json.dumps({"id": i, "prompt": f"question number {i}"}) + "\n").encode())
        proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=240), "no output before end of input: not streamed"
        first = json.loads(proc.stdout.readline())
        assert first["id"] == 0
        proc.stdin.close()
        rest = proc.stdout.read().decode().splitlines()
        assert len(rest) == 299
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_score_cli_usage_errors(tmp_path):
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(tmp_path / "nope.jsonl")], capture_output=True, timeout=120)
    assert r.returncode == 2 and b"no such file" in r.stderr
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(tmp_path)], capture_output=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().endswith(f"{tmp_path}: not a file".encode()), r.stderr
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hi"}\n')
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(f), "--policy", '{"budget_dep": 3}'],
                       capture_output=True, timeout=120)
    assert r.returncode == 1 and b"unknown allocator setting 'budget_dep'" in r.stderr


def test_score_cli_100k_lines(tmp_path):
    """100,000 lines (every 50th a prompt, the rest broken or blank) stream through: each bad
    line is named, each good one scored, in input order."""
    f = tmp_path / "big.jsonl"
    with f.open("w") as fh:
        for i in range(1, 100_001):
            if i % 50 == 0:
                fh.write(json.dumps({"id": i, "prompt": f"how do I cook dish number {i}"}) + "\n")
            elif i % 2:
                fh.write("{not json\n")
            else:
                fh.write("\n")
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(f)], capture_output=True, timeout=600)
    assert r.returncode == 1
    ids = [json.loads(l)["id"] for l in r.stdout.decode().splitlines()]
    assert ids == list(range(50, 100_001, 50))
    errs = r.stderr.decode().splitlines()
    assert sum(1 for e in errs if ": invalid JSON" in e) == 50_000
    assert f"{f}:99999: invalid JSON" in r.stderr.decode()


def test_score_cli_survives_deep_nesting_and_a_huge_line(tmp_path):
    """Issue #16 item 6: a 200k-deep JSON array ended the command with RecursionError after 11
    of 16 scorable lines, and a huge single line was read whole. Now each is an error for its
    line only, every scorable line is scored, and a 200 MB line costs bounded memory."""
    f = tmp_path / "hostile.jsonl"
    good = [json.dumps({"id": i, "prompt": f"how do I bake bread number {i}"}).encode() for i in range(16)]
    lines = good[:11] + [b"[" * 200_000 + b"]" * 200_000] + good[11:13] + [b'{"prompt": "' + b"a" * (200 << 20) + b'"}'] + good[13:]
    f.write_bytes(b"\n".join(lines) + b"\n")
    del lines
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
             "sys.stdout.buffer.write(r.stdout); sys.stderr.buffer.write(r.stderr); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    r = subprocess.run([PY, "-c", probe, PY, "-m", "conscience.allocator", "score", str(f)], capture_output=True, timeout=600)
    err = r.stderr.decode().splitlines()
    peak_mb = int(err[-1]) / 1024
    assert r.returncode == 1
    ids = [json.loads(l)["id"] for l in r.stdout.decode().splitlines()]
    assert ids == list(range(16))
    assert f"{f}:12: JSON nested deeper than 64 levels" in err
    assert f"{f}:15: line longer than {16 * 1024 * 1024} bytes" in err
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"\n".join(good) + b"\n")
    r0 = subprocess.run([PY, "-c", probe, PY, "-m", "conscience.allocator", "score", str(small)], capture_output=True, timeout=600)
    base_mb = int(r0.stderr.decode().splitlines()[-1]) / 1024
    # reading 200 MB whole would cost 200 MB or more on top of the baseline; the cap is 16 MiB
    assert peak_mb < base_mb + 100, (peak_mb, base_mb)


@pytest.mark.parametrize("problem, args, code, why", [
    ("no input", ["{nosuch}"], 2, "no such file"),
    ("no model", ["{prompts}", "--model", "{nosuch}"], 1, "has no model.onnx"),
    ("bad policy", ["{prompts}", "--policy", "{bad"], 2, "--policy must be a JSON object"),
    ("unknown setting", ["{prompts}", "--policy", '{"budget_dep": 3}'], 1, "unknown allocator setting 'budget_dep'"),
])
def test_score_leaves_out_as_it_was_when_it_cannot_score(tmp_path, problem, args, code, why):
    """`score F --out K` whose input, model or policy is bad: K keeps what it held (it was
    emptied before any check)."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "how to bake bread"}\n')
    keep = tmp_path / "k.out"
    keep.write_text("precious\n")
    argv = [a.replace("{nosuch}", str(tmp_path / "nosuch")).replace("{prompts}", str(prompts)) for a in args]
    r = subprocess.run([PY, "-m", "conscience.allocator", "score", *argv, "--out", str(keep)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == code and why in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert keep.read_text() == "precious\n", problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.out", "p.jsonl"]


def test_score_out_is_replaced_only_when_scoring_finished(tmp_path, monkeypatch, capsys):
    """Results go to a temporary file beside --out, renamed over it at the end: a failure part-way
    (a full disk) leaves the old file whole, and no half file or temporary file behind."""
    from conscience.allocator import cli, score

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": f"question {i}"}) + "\n" for i in range(3)))
    keep = tmp_path / "k.out"
    keep.write_text("precious\n")
    real = score.score_stream

    def fails_part_way(stream, name, out, err, cfg=None, batch=32):
        out.write('{"id": 0, "half": ')
        raise OSError(28, "No space left on device", str(keep))

    monkeypatch.setattr(score, "score_stream", fails_part_way)
    assert cli.main(["score", str(prompts), "--out", str(keep)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert keep.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.out", "p.jsonl"]
    monkeypatch.setattr(score, "score_stream", real)
    keep.chmod(0o640)
    assert cli.main(["score", str(prompts), "--out", str(keep)]) == 0
    assert [json.loads(l)["id"] for l in keep.read_text().splitlines()] == [0, 1, 2]
    assert keep.stat().st_mode & 0o777 == 0o640, "the replaced file keeps its permissions"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.out", "p.jsonl"]


def test_score_policy_that_is_not_json_or_not_finite_is_a_usage_error(tmp_path):
    """As `conscience inspect --policy`: exit 2 with a line naming --policy (and the key whose
    value is NaN or infinite), not a bare JSON parser message with exit 1."""
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hi"}\n')
    for policy, why in (("{bad", '--policy must be a JSON object, got "{bad"'), ("[1]", "--policy must be a JSON object, got \"[1]\""),
                        ('{"risk_harmful": NaN}', "--policy: risk_harmful must be a finite number, got NaN"),
                        ('{"budget_deep": -Infinity}', "--policy: budget_deep must be a finite number, got -Infinity"),
                        ('{"risk_standard": 1e999}', "--policy: risk_standard must be a finite number, got Infinity")):
        r = subprocess.run([PY, "-m", "conscience.allocator", "score", str(f), "--policy", policy], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.strip() == why and r.stdout == "", (policy, r.stderr)


def test_score_into_a_pipe_closed_early_stops_quietly(tmp_path):
    """`score F | head -1`: once the reader has gone, score stops with no error and no
    traceback (it printed "error: : Broken pipe" and exited 1)."""
    f = tmp_path / "many.jsonl"
    f.write_text("".join(json.dumps({"id": i, "prompt": f"question number {i}"}) + "\n" for i in range(2000)))
    proc = subprocess.Popen([PY, "-m", "conscience.allocator", "score", str(f)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = json.loads(proc.stdout.readline())
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=240) == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first["id"] == 0
    assert "Broken pipe" not in err and "Traceback" not in err and "error" not in err, err


def test_score_output_does_not_depend_on_the_character_window(tmp_path, monkeypatch):
    """Prompts are scored in windows of 8 batches or WINDOW_CHARS characters, whichever comes
    first (as inspect.ts), so forty 8 MiB lines are not all held at once; the output is the same."""
    import io

    from conscience.allocator import score

    texts = [("word " * (50 + 37 * i % 400)) + f"end {i}" for i in range(60)]
    data = "".join(json.dumps({"id": i, "prompt": t}) + "\n" for i, t in enumerate(texts)).encode() + b"{bad\n"

    def run() -> tuple[str, list[int]]:
        out, err = io.StringIO(), io.StringIO()
        assert score.score_stream(io.BytesIO(data), "x.jsonl", out, err) == (60, 1)
        return out.getvalue(), windows

    real = score.Allocator.score
    windows: list[int] = []

    def counting(self, texts, *a, **k):
        windows.append(sum(map(len, texts)))
        return real(self, texts, *a, **k)

    monkeypatch.setattr(score.Allocator, "score", counting)
    whole, w = run()
    assert len(w) == 1
    windows = []
    monkeypatch.setattr(score, "WINDOW_CHARS", 5000)
    small, w = run()
    assert small == whole
    assert len(w) > 5 and max(w) < 5000 + max(map(len, texts)), w
