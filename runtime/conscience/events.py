"""The event stream of docs/events.md: `<output_dir>/events.jsonl`, written by rank 0 only.

One JSON object per line, flushed per event, never rewritten. Every event has `type`, a
strictly increasing `seq` (continued across resumes), `time` (Unix seconds) and `run_id`.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from typing import Any, Optional

EVENTS_FILE = "events.jsonl"


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
        self._file = open(self.path, "a", encoding="utf-8")
        if not ends_nl:
            # An interrupted write left a partial line: end it so the next event starts clean.
            self._file.write("\n")
            self._file.flush()
        self.last_step = 0
        self._closed = False
        self._hb_stop = threading.Event()
        self._hb_thread: Optional[threading.Thread] = None

    @property
    def next_seq(self) -> int:
        return self._seq

    def emit(self, type_: str, **fields: Any) -> Optional[dict]:
        with self._lock:
            if self._closed:
                return None
            event = {"type": type_, "seq": self._seq, "time": time.time(), "run_id": self.run_id}
            event.update(_finite(fields))
            line = json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            self._file.write(line + "\n")
            self._file.flush()
            self._seq += 1
            return event

    # heartbeat -------------------------------------------------------------------------
    def start_heartbeat(self, interval_s: float = 30.0) -> None:
        if self._hb_thread is not None:
            return

        def loop() -> None:
            while not self._hb_stop.wait(interval_s):
                self.emit("heartbeat", step=self.last_step)

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
                self._file.close()
