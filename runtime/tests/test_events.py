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


# A write that fails for real: the kernel refuses to grow a file past RLIMIT_FSIZE (EFBIG, as a
# full disk refuses with ENOSPC), in a child process so pytest's own files are not limited.
WRITE_FAILS = r"""
import json, os, resource, signal, sys, time
from conscience.events import EventWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of failing the write
folder = sys.argv[1]
w = EventWriter(folder, resume=True)
w.emit("run_started")
w.start_heartbeat(0.05)
time.sleep(0.3)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(w.path) + 100, hard))  # the disk fills up
first = w.emit("metrics", step=1, values={"x": 1.0, "pad": "y" * 5000})
time.sleep(0.3)  # heartbeats fail too
alive_while_failing = w._hb_thread.is_alive()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
time.sleep(0.3)
second = w.emit("metrics", step=2, values={"x": 2.0})
w.stop_heartbeat()
finished = w.emit("run_finished", status="completed", exit_code=0)
w.close()
print(json.dumps({"first": first, "second": second is not None, "finished": finished is not None,
                  "alive": alive_while_failing, "lost": w.lost}))
"""


def test_a_failed_write_loses_that_event_only_and_never_reuses_a_seq_or_stops_the_heartbeat(tmp_path):
    import os
    import subprocess
    import sys

    runtime = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", WRITE_FAILS, str(tmp_path)], cwd=runtime, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": runtime})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["first"] is None and res["second"] and res["finished"]  # emit said the event was lost, did not raise
    assert res["alive"], "the heartbeat thread died on a failed write"
    assert res["lost"] >= 1
    assert "events.jsonl: cannot write: File too large; the run goes on" in r.stderr
    assert "writing again from seq" in r.stderr
    assert "Traceback" not in r.stderr
    lines = (tmp_path / "events.jsonl").read_bytes().split(b"\n")
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            pass  # the line the failure cut off (ended with a newline, then skipped by readers)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), f"seq reused or out of order: {seqs}"
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    after_gap = next(b for a, b in zip(seqs, seqs[1:]) if b != a + 1)  # the first seq written after the lost ones
    assert any(e["type"] == "heartbeat" and e["seq"] >= after_gap for e in events), "no heartbeat after the disk had space again"
    assert [e["step"] for e in events if e["type"] == "metrics"] == [2]  # step 1 was lost, not written later


def test_events_file_removed_during_the_run_is_written_again(tmp_path):
    import os

    w = EventWriter(str(tmp_path), resume=True, run_id="r")
    w.emit("run_started")
    os.remove(tmp_path / "events.jsonl")
    for i in range(3):
        w.emit("metrics", step=i, values={})
    w.emit("run_finished", status="completed", exit_code=0)
    w.close()
    ev = _events(tmp_path / "events.jsonl")
    assert [(e["seq"], e["type"]) for e in ev] == [(1, "metrics"), (2, "metrics"), (3, "metrics"), (4, "run_finished")]
    assert {e["run_id"] for e in ev} == {"r"}
    # moved aside (a file of another inode now at the path): the writer appends to what is there
    w = EventWriter(str(tmp_path), resume=True)
    os.replace(tmp_path / "events.jsonl", tmp_path / "moved.jsonl")
    (tmp_path / "events.jsonl").write_text("")
    w.emit("heartbeat", step=0)
    w.close()
    assert [e["seq"] for e in _events(tmp_path / "events.jsonl")] == [5]


def test_output_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    import pytest

    from conscience.events import OutputBusy, OutputLock

    path = str(tmp_path / "sub" / ".conscience.lock")
    lock = OutputLock.acquire(path, "DIR: another run is writing this output_dir")
    held = json.loads(open(path).read())
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    with pytest.raises(OutputBusy, match=rf"^DIR: another run is writing this output_dir \(pid {os.getpid()} since "):
        OutputLock.acquire(path, "DIR: another run is writing this output_dir")
    lock.release()
    assert not os.path.exists(path) and not os.path.exists(tmp_path / "sub")  # the folder it made, removed again

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    os.makedirs(tmp_path / "sub")
    with open(path, "w") as f:  # left by a run that was killed (SIGKILL, a node's crash)
        json.dump({"pid": int(dead), "host": socket.gethostname(), "since": "then"}, f)
    lock = OutputLock.acquire(path, "busy")
    assert json.loads(open(path).read())["pid"] == os.getpid()
    lock.release()

    with open(path, "w") as f:  # another host's: its pid cannot be checked from here
        json.dump({"pid": 1, "host": "other-node-7", "since": "today"}, f)
    with pytest.raises(OutputBusy, match=rf"pid 1 on host other-node-7 since today; .* if that run is over, remove {path}"):
        OutputLock.acquire(path, "busy")
    assert json.loads(open(path).read())["host"] == "other-node-7"

    # a SLURM job requeued after preemption keeps its id and may restart on another node: the
    # lock its killed first attempt left there is stale (SLURM runs one attempt of a job at a time)
    with open(path, "w") as f:
        json.dump({"pid": 1, "host": "other-node-7", "since": "today", "slurm_job": "4242"}, f)
    old_job = os.environ.get("SLURM_JOB_ID")
    os.environ["SLURM_JOB_ID"] = "4242"
    try:
        lock = OutputLock.acquire(path, "busy")
        held = json.loads(open(path).read())
        assert held["pid"] == os.getpid() and held["slurm_job"] == "4242"
        lock.release()
        with open(path, "w") as f:  # another job's lock on another node is still not assumed stale
            json.dump({"pid": 1, "host": "other-node-7", "since": "today", "slurm_job": "4241"}, f)
        with pytest.raises(OutputBusy, match="pid 1 on host other-node-7"):
            OutputLock.acquire(path, "busy")
    finally:
        if old_job is None:
            os.environ.pop("SLURM_JOB_ID", None)
        else:
            os.environ["SLURM_JOB_ID"] = old_job
