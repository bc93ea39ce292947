"""The event writer: seq, resume, partial lines, non-finite numbers, heartbeat."""

import json
import time

from conscience.events import EventWriter


def _events(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]


def test_seq_time_run_id_and_non_finite(tmp_path):
    w = EventWriter(str(tmp_path), resume=False, run_id="r1")
    w.emit("run_started", world_size=1)
    w.emit("metrics", step=1, values={"loss": float("nan"), "kl": float("inf"), "reward": 0.5})
    w.close()
    ev = _events(tmp_path / "events.jsonl")
    assert [e["seq"] for e in ev] == [0, 1]
    assert all(e["run_id"] == "r1" and isinstance(e["time"], float) for e in ev)
    assert ev[1]["values"] == {"loss": None, "kl": None, "reward": 0.5}


def test_resume_continues_seq_and_run_id_and_ends_partial_line(tmp_path):
    w = EventWriter(str(tmp_path), resume=False, run_id="first")
    for i in range(3):
        w.emit("metrics", step=i, values={})
    w.close()
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"type":"metrics","seq":3,"ti')  # a write cut off by a crash
    w = EventWriter(str(tmp_path), resume=True, run_id="ignored")
    assert w.run_id == "first" and w.next_seq == 3
    w.emit("run_started", resumed_from="ckpt")
    w.close()
    lines = open(tmp_path / "events.jsonl").read().splitlines()
    assert lines[3].startswith('{"type":"metrics","seq":3,"ti')  # kept, never rewritten
    last = json.loads(lines[4])
    assert last["seq"] == 3 and last["run_id"] == "first"


def test_fresh_run_moves_old_stream_aside(tmp_path):
    w = EventWriter(str(tmp_path), resume=False)
    w.emit("run_started")
    w.close()
    w = EventWriter(str(tmp_path), resume=False)
    w.emit("run_started")
    w.close()
    assert (tmp_path / "events.1.jsonl").exists()
    assert [e["seq"] for e in _events(tmp_path / "events.jsonl")] == [0]


def test_heartbeat_thread(tmp_path):
    w = EventWriter(str(tmp_path), resume=False)
    w.last_step = 7
    w.start_heartbeat(0.05)
    time.sleep(0.3)
    w.close()
    beats = [e for e in _events(tmp_path / "events.jsonl") if e["type"] == "heartbeat"]
    assert len(beats) >= 2 and all(b["step"] == 7 for b in beats)
    seqs = [e["seq"] for e in _events(tmp_path / "events.jsonl")]
    assert seqs == list(range(len(seqs)))
