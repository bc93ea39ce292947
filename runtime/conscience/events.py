"""The event stream of docs/events.md: `<output_dir>/events.jsonl`, written by rank 0 only.

One JSON object per line, flushed per event, never rewritten. Every event has `type`, a
strictly increasing `seq` (continued across resumes), `time` (Unix seconds) and `run_id`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
import time
from typing import Any, Optional

EVENTS_FILE = "events.jsonl"

logger = logging.getLogger("conscience.events")


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None; tensors/numpy scalars become numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _finite(item())
        except Exception:  # noqa: BLE001
            return None
    try:
        return _finite(float(value))
    except (TypeError, ValueError):
        return str(value)


def scan_events(path: str) -> tuple[Optional[int], Optional[str], bool]:
    """(last seq, first run_id, ends_with_newline) of an existing events file."""
    last_seq: Optional[int] = None
    run_id: Optional[str] = None
    ends_nl = True
    try:
        with open(path, "rb") as f:
            for raw in f:
                ends_nl = raw.endswith(b"\n")
                if not ends_nl:
                    break  # a trailing partial line is not an event
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(ev, dict):
                    continue
                seq = ev.get("seq")
                if isinstance(seq, int) and not isinstance(seq, bool):
                    last_seq = seq if last_seq is None else max(last_seq, seq)
                if run_id is None and isinstance(ev.get("run_id"), str):
                    run_id = ev["run_id"]
    except FileNotFoundError:
        return None, None, True
    return last_seq, run_id, ends_nl


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


class EventWriter:
    """Appends events to `<output_dir>/events.jsonl`. Thread-safe (heartbeat thread + trainer).

    With `resume=True` an existing file is continued: seq goes on from its last value and the
    run id is kept. With `resume=False` an existing file is moved aside to
    `events.<n>.jsonl` first, so a new run starts a new stream at seq 0.

    A write that fails (disk full, a network file system's hiccup) never stops the run: `emit`
    logs one line, returns None and the event is lost; its `seq` is not used again, so `seq`
    stays strictly increasing (with a gap). A line the failure cut off is ended with a newline before
    the next event. When `events.jsonl` is removed or replaced during the run, the next event
    recreates it (appending to what is then at the path) and goes on with the next `seq`.
    """

    def __init__(self, output_dir: str, resume: bool, run_id: Optional[str] = None) -> None:
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, EVENTS_FILE)
        self._lock = threading.Lock()
        last_seq, old_run_id, ends_nl = (None, None, True)
        if os.path.exists(self.path):
            if resume:
                last_seq, old_run_id, ends_nl = scan_events(self.path)
            else:
                n = 1
                while os.path.exists(os.path.join(output_dir, f"events.{n}.jsonl")):
                    n += 1
                os.replace(self.path, os.path.join(output_dir, f"events.{n}.jsonl"))
        self.run_id = old_run_id or run_id or os.environ.get("CONSCIENCE_RUN_ID") or new_run_id()
        self._seq = 0 if last_seq is None else last_seq + 1
        # One unbuffered O_APPEND descriptor, one os.write per line: a failed write leaves no
        # bytes behind in a buffer to be written later with another event's seq.
        self._fd: Optional[int] = self._open()
        # An interrupted write left a partial line: end it so the next event starts clean.
        self._partial = not ends_nl
        self.lost = 0  # events that could not be written
        self._failing: Optional[tuple[int, str]] = None  # (first lost seq, why) while writes fail
        self.last_step = 0
        self._closed = False
        self._hb_stop = threading.Event()
        self._hb_thread: Optional[threading.Thread] = None

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)

    @property
    def next_seq(self) -> int:
        return self._seq

    def _same_file(self) -> bool:
        """Whether the path still names the file the descriptor writes to."""
        if self._fd is None:
            return False
        try:
            here, ours = os.stat(self.path), os.fstat(self._fd)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)

    def _write(self, data: bytes) -> None:
        if not self._same_file():
            if self._fd is not None:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = None
                logger.warning("%s was removed or replaced during the run; writing it again from seq %d", self.path, self._seq)
            self._fd = self._open()
            self._partial = False
        if self._partial:
            data = b"\n" + data
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except OSError:
                if len(view) < len(data):
                    self._partial = True  # part of the line is in the file: end it before the next one
                raise
            view = view[n:]
        self._partial = False

    def emit(self, type_: str, **fields: Any) -> Optional[dict]:
        """Append one event; the event, or None when the writer is closed or the write failed."""
        with self._lock:
            if self._closed:
                return None
            seq = self._seq
            self._seq += 1  # a seq is never used twice, even when its line is lost
            event = {"type": type_, "seq": seq, "time": time.time(), "run_id": self.run_id}
            event.update(_finite(fields))
            line = json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            try:
                self._write((line + "\n").encode("utf-8"))
            except OSError as e:
                self.lost += 1
                if self._failing is None:
                    why = e.strerror or str(e)
                    self._failing = (seq, why)
                    logger.warning("%s: cannot write: %s; the run goes on, its events are lost until a write succeeds "
                                   "(seq %d, %s)", self.path, why, seq, type_)
                return None
            if self._failing is not None:
                first, why = self._failing
                self._failing = None
                logger.warning("%s: writing again from seq %d; seq %d-%d were lost (%s)", self.path, seq, first, seq - 1, why)
            return event

    # heartbeat -------------------------------------------------------------------------
    def start_heartbeat(self, interval_s: float = 30.0) -> None:
        if self._hb_thread is not None:
            return

        def loop() -> None:
            while not self._hb_stop.wait(interval_s):
                try:
                    self.emit("heartbeat", step=self.last_step)
                except Exception:  # noqa: BLE001 - the heartbeat outlives any one bad write
                    logger.exception("%s: heartbeat not written", self.path)

        self._hb_thread = threading.Thread(target=loop, name="conscience-heartbeat", daemon=True)
        self._hb_thread.start()

    def stop_heartbeat(self) -> None:
        self._hb_stop.set()
        if self._hb_thread is not None:
            self._hb_thread.join(timeout=5)
            self._hb_thread = None

    def close(self) -> None:
        self.stop_heartbeat()
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._fd is not None:
                    try:
                        os.close(self._fd)
                    except OSError as e:  # e.g. NFS reporting a failed write-back at close
                        logger.warning("%s: closing: %s", self.path, e.strerror or e)
                    self._fd = None


# ---------------------------------------------------------------------------------------
# One writer per output (a run's output_dir, a traces file)
# ---------------------------------------------------------------------------------------

LOCK_FILE = ".conscience.lock"  # in a run's output_dir


class OutputBusy(RuntimeError):
    """Another live process holds the output's lock file (or the lock cannot be made)."""


def lock_output_dir(output_dir: str) -> "OutputLock":
    """The lock of a run's output_dir (conscience.train, conscience.sft and conscience.eval take
    it before they write anything), or OutputBusy naming the run that holds it, or saying why
    the folder or its lock file cannot be made."""
    folder = os.path.abspath(output_dir)
    try:
        return OutputLock.acquire(os.path.join(folder, LOCK_FILE), f"{folder}: another run is writing this output_dir")
    except OSError as e:
        raise OutputBusy(f"{folder}: cannot create output_dir or its lock file: {e.strerror or e}") from None


def _proc_start(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields and fields[0] == b"Z":  # a zombie has ended; only its exit status is left
        return "zombie"
    return fields[19].decode() if len(fields) > 19 else None


def _pid_alive(pid: int, start: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return True
    now = _proc_start(pid)
    if now == "zombie":
        return False
    return not (start and now and now != start)  # the pid was reused by another process


class OutputLock:
    """A lock file naming the process that writes an output: `{pid, host, start, since, token}`.

    `acquire` creates it (O_EXCL); when it exists, its holder is alive unless it names this host
    and a pid that is gone (or reused: the recorded start time differs), in which case the lock is
    stale and taken over. A lock from another host is never assumed stale (its pid cannot be
    checked from here): the message says which host and which file to remove. `release` removes
    the file if it is still this holder's. Taking over a stale lock is serialised by an flock on
    the folder, where the file system has one, so two runs never both take the same stale lock.
    """

    def __init__(self, path: str, token: str) -> None:
        self.path = path
        self.token = token
        self.made_folder: Optional[str] = None  # removed again at release when still empty

    @staticmethod
    def _read(path: str) -> Optional[dict]:
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    @classmethod
    def acquire(cls, path: str, busy: str) -> "OutputLock":
        """Take the lock at `path`, or raise OutputBusy("<busy> (pid N on host H since T); ...").
        The lock's folder is created if missing (OSError when it cannot be)."""
        import socket

        folder = os.path.dirname(os.path.abspath(path))
        made = None if os.path.isdir(folder) else folder
        os.makedirs(folder, exist_ok=True)
        try:
            lock = cls._acquire(path, busy, socket.gethostname())
        except BaseException:
            _remove_if_empty(made)
            raise
        lock.made_folder = made
        return lock

    @classmethod
    def _acquire(cls, path: str, busy: str, host: str) -> "OutputLock":
        token = secrets.token_hex(8)
        job = os.environ.get("SLURM_JOB_ID") or None
        mine = {"pid": os.getpid(), "host": host, "start": _proc_start(os.getpid()),
                "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()), "token": token, "slurm_job": job}
        data = (json.dumps(mine) + "\n").encode("utf-8")
        folder = os.path.dirname(os.path.abspath(path))
        for _ in range(5):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                return cls(path, token)
            with _folder_mutex(folder):
                held = cls._read(path)
                if held is None:
                    continue  # released meanwhile: try again
                pid, where = held.get("pid"), held.get("host")
                if not isinstance(pid, int) or not isinstance(where, str):
                    if time.time() - _mtime(path) < 5:
                        time.sleep(0.2)  # being written by its holder right now
                        continue
                    raise OutputBusy(f"{busy}: {path} is a lock file that names no process; if no run is writing "
                                     "there, remove it")
                # a SLURM job requeued after preemption keeps its id and may start on another
                # node: the lock its killed first attempt left names that node, and SLURM never
                # runs two attempts of one job at once, so it is stale
                requeued = job is not None and held.get("slurm_job") == job and where != host
                if requeued or (where == host and not _pid_alive(pid, held.get("start"))):
                    try:
                        os.unlink(path)  # stale: its process is gone
                    except FileNotFoundError:
                        pass
                    continue
                since = f" since {held['since']}" if isinstance(held.get("since"), str) else ""
                if where == host:
                    raise OutputBusy(f"{busy} (pid {pid}{since}); wait for it to end or stop it")
                raise OutputBusy(f"{busy} (pid {pid} on host {where}{since}; it cannot be checked from {host}); "
                                 f"if that run is over, remove {path}")
        raise OutputBusy(f"{busy}: {path} keeps changing; try again")

    def release(self) -> None:
        held = self._read(self.path)
        if held and held.get("token") == self.token:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        _remove_if_empty(self.made_folder)


def _remove_if_empty(folder: Optional[str]) -> None:
    if folder:
        try:
            os.rmdir(folder)
        except OSError:
            pass


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class _folder_mutex:
    """flock(LOCK_EX) on a folder for a few milliseconds; nothing where flock is not supported."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.fd: Optional[int] = None

    def __enter__(self) -> "_folder_mutex":
        try:
            import fcntl

            self.fd = os.open(self.folder, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (OSError, ImportError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
