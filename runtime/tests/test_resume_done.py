"""Issue #16 item 7: resuming a run whose last checkpoint already reached max_steps trained one
step more ("step 401 of 400"; reproduced here with max_steps 2: it trained step 3). The trainer
now ends such a resume at once: a new run_started (resumed_from set), no training step,
run_finished completed. The real trainer on the tiny in-process model, one CPU process."""

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")
CACHE = os.path.join(ROOT, ".cache", "conscience-test-w0")


def _events(out):
    with open(os.path.join(out, "events.jsonl"), encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.endswith("\n")]


def _run_twice(module, demo, overrides, tmp_path, drop=()):
    """The demo recipe of `module` with `overrides`, run twice in one output folder (the second
    run resumes at the first one's last checkpoint); its events and the second run's stderr."""
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    with open(demo) as f:
        r = yaml.safe_load(f)
    r.update(overrides)
    for k in drop:
        r.pop(k, None)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(r))
    out = tmp_path / "out"
    env = dict(os.environ, CONSCIENCE_CACHE=CACHE, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", module, "--config", str(recipe), "--output_dir", str(out)]
    for attempt in (1, 2):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"attempt {attempt}: {p.stderr[-3000:]}"
    return _events(out), p.stderr, out


def test_resuming_a_run_at_max_steps_trains_nothing_more(tmp_path):
    events, stderr, out = _run_twice("conscience.train", DEMO, {"max_steps": 2, "save_steps": 2, "max_completion_length": 16,
                                                               "max_prompt_length": 128, "max_train_samples": 16},
                                     tmp_path, drop=("launch",))
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps == [1, 2], f"trained past max_steps: {steps}"
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2 and starts[1]["resumed_from"] == str(out / "checkpoint-2")
    finished = [e for e in events if e["type"] == "run_finished"]
    assert [e["status"] for e in finished] == ["completed", "completed"]
    assert finished[1]["summary"]["trained"] is False
    assert "nothing left to train" in stderr


def test_an_sft_run_resumed_at_max_steps_trains_nothing_more(tmp_path):
    """The same guard in conscience.sft (it trained step 3 of 2 before): the real SFT trainer."""
    events, _, out = _run_twice("conscience.sft", os.path.join(ROOT, "recipes", "demo", "sft-tiny.yaml"),
                                {"max_steps": 2, "save_steps": 2, "logging_steps": 1, "per_device_train_batch_size": 8,
                                 "max_length": 160, "probe_prompts": 0, "use_cpu": True}, tmp_path)
    assert [e["step"] for e in events if e["type"] == "metrics" and "loss" in e["values"]] == [1, 2]
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2 and starts[1]["resumed_from"] == str(out / "checkpoint-2")
    assert [e for e in events if e["type"] == "run_finished"][1]["summary"]["trained"] is False


def test_resume_from_checkpoint_true_and_false_as_yaml_writes_them(tmp_path):
    """YAML gives booleans: true resumes from the last checkpoint, false starts afresh (before,
    true crashed in os.path.abspath(True) and false resumed anyway)."""
    from conscience.train import resolve_resume

    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    last = str(out / "checkpoint-2")
    assert resolve_resume(True, str(out)) == last and resolve_resume("true", str(out)) == last
    assert resolve_resume(False, str(out)) is None and resolve_resume("false", str(out)) is None
    assert resolve_resume(None, str(out)) == last  # unset: the last checkpoint, if any
    assert resolve_resume("/elsewhere/checkpoint-9", str(out)) == "/elsewhere/checkpoint-9"
    assert resolve_resume(True, str(tmp_path / "fresh")) is None


def test_sigterm_while_the_prompts_are_prepared_ends_the_run_cancelled(tmp_path, monkeypatch):
    """A SIGTERM that lands while the prompt set is read and budgeted (seconds for a big set or
    allocator scoring): run_started, then run_finished cancelled and exit 143, as at any other
    moment (before, RunCancelled escaped main: exit 1, no events)."""
    import signal

    from conscience import train

    def prepare(recipe):
        train._CANCEL["signum"] = signal.SIGTERM
        raise train.RunCancelled(signal.SIGTERM)

    monkeypatch.setattr(train, "_train_rows", prepare)
    monkeypatch.setattr(train, "_CANCEL", {"signum": None})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model_name_or_path: conscience/tiny\ndataset_name: conscience/safety_prompts\noutput_dir: {tmp_path / 'out'}\nreport_to: none\n")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert train.main(["--config", str(recipe)]) == 128 + signal.SIGTERM
    finally:  # main installs its own handlers: give pytest its own back
        for s, h in handlers.items():
            signal.signal(s, h)
    events = _events(tmp_path / "out")
    assert [e["type"] for e in events] == ["run_started", "run_finished"]
    assert events[1]["status"] == "cancelled" and events[1]["exit_code"] == 143


def test_a_run_stopped_by_its_launcher_for_a_failed_server_ends_failed_with_the_reason(tmp_path, monkeypatch):
    """conscience.launch stops training when its vLLM server exits first, and writes why to the
    file CONSCIENCE_STOP_REASON names before the SIGTERM: the run then ends `failed` with that
    reason (the Runs view shows it as the cause), not `cancelled` as a user's cancel would. With no
    reason written, the same SIGTERM is still a cancel."""
    import signal

    from conscience import train

    def prepare(recipe):
        train._CANCEL["signum"] = signal.SIGTERM
        raise train.RunCancelled(signal.SIGTERM)

    monkeypatch.setattr(train, "_train_rows", prepare)
    reason = tmp_path / "stop_reason"
    monkeypatch.setenv("CONSCIENCE_STOP_REASON", str(reason))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for out, written in ((tmp_path / "out-cancel", None), (tmp_path / "out-failed", "the vLLM server (python -m trl.scripts.vllm_serve --model=x) exited with code 3 before training ended\n")):
            if written:
                reason.write_text(written)
            monkeypatch.setattr(train, "_CANCEL", {"signum": None})
            recipe = tmp_path / "r.yaml"
            recipe.write_text(f"model_name_or_path: conscience/tiny\ndataset_name: conscience/safety_prompts\noutput_dir: {out}\nreport_to: none\n")
            assert train.main(["--config", str(recipe)]) == 128 + signal.SIGTERM
            finished = _events(out)[-1]
            assert finished["type"] == "run_finished" and finished["exit_code"] == 143
            if written:
                assert finished["status"] == "failed" and finished["error"] == written.strip()
            else:
                assert finished["status"] == "cancelled" and finished["error"] == "received SIGTERM"
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def test_a_cancel_while_the_trainer_is_still_importing_exits_143_without_a_traceback(tmp_path):
    """docs/runtime.md: a signal while the recipe is still loading ends the trainer with 143. The
    first seconds (importing TRL and torch) were outside the handler's reach: a cancel right after
    launch exited 1 with a RunCancelled traceback, and the Runs view read `cancelled (1)`."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "runtime"), OMP_NUM_THREADS="1")
    for delay in (0.6, 1.5):
        p = subprocess.Popen([sys.executable, "-m", "conscience.train", "--config", DEMO, "--output_dir", str(tmp_path / "out")],
                             stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))
        time.sleep(delay)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 143, (delay, err[-2000:])
        assert "Traceback" not in err, (delay, err[-2000:])
