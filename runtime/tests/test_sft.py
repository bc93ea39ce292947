"""conscience.sft: kind: sft recipes, trace checking (FILE:LINE), and real TRL SFTTrainer runs
of the tiny model on CPU that write the GRPO event stream, resume, and run on TRL 1.x too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conscience.recipe import RecipeError
from conscience.sft import BUNDLED_TRACES_PATH, TraceError, load_sft_recipe, read_traces

RUNTIME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(RUNTIME)
TRL1_PY = os.path.join(REPO, ".venv-trl1", "bin", "python")

GOOD = {"id": "t1", "prompt": "How do I bake bread?", "label": "benign", "budget": 0, "safety": "", "answer": "Knead, rise, bake."}


def _write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "bad,line,needle",
    [
        ({**GOOD, "answer": ""}, 2, "`answer` must be a non-empty string"),
        ({**GOOD, "safety": None}, 2, "`safety` must be a string"),
        ({**GOOD, "safety": "think</safety> leaked"}, 2, "`safety` contains the tag </safety>"),
        ({**GOOD, "answer": "<safety>again</safety> hi"}, 2, "`answer` contains the tag <safety>"),
        ({**GOOD, "label": "unsure"}, 2, "`label` must be one of"),
        ({**GOOD, "budget": -3}, 2, "`budget` must be >= 0"),
        ('{"id": "t2", "prompt": "unterminated', 2, "invalid JSON"),
        (GOOD, 2, "duplicate id 't1' (first on line 1)"),
        ('{"id": "t2", "prompt": "p", "label": "benign", "safety": "ok \\ud800", "answer": "a"}', 2, "`safety` holds a lone surrogate"),
        ('{"id": "t2", "prompt": "p", "label": "benign", "safety": "", "answer": "a \\udfff"}', 2, "`answer` holds a lone surrogate"),
        ('{"id": "t\\ud800", "prompt": "p", "label": "benign", "safety": "", "answer": "a"}', 2, "`id` holds a lone surrogate"),
        ('{"id": "t2", "prompt": "p", "label": "benign", "category": "\\ud800", "safety": "", "answer": "a"}', 2, "`category` holds a lone surrogate"),
    ],
)
def test_malformed_trace_is_reported_as_file_line(tmp_path, bad, line, needle):
    path = _write(tmp_path / "traces.jsonl", [GOOD, bad])
    with pytest.raises(TraceError) as e:
        read_traces(path)
    assert str(e.value).startswith(f"{path}:{line}:")
    assert needle in str(e.value)


def test_missing_budget_takes_the_recipe_label_default(tmp_path):
    from conscience.recipe import SafetyConfig

    row = {k: v for k, v in GOOD.items() if k != "budget"}
    row["label"] = "harmful"
    path = _write(tmp_path / "t.jsonl", [row])
    assert read_traces(path, SafetyConfig(budget_harmful=20))[0]["budget"] == 20


def _recipe(tmp_path, extra="", traces=None, **keys):
    traces = traces or _write(tmp_path / "traces.jsonl", read_traces(BUNDLED_TRACES_PATH)[:48])
    base = {
        "kind": "sft",
        "model_name_or_path": "conscience/tiny",
        "dataset_name": traces,
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "max_length": 160,
        "logging_steps": 2,
        "save_strategy": "steps",
        "save_steps": 2,
        "probe_prompts": 4,
        "probe_max_new_tokens": 12,
        "seed": 7,
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **keys,
    }
    path = tmp_path / "sft.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in base.items()) + "\n" + extra)
    return str(path)


def test_recipe_errors_name_file_and_line(tmp_path):
    path = _recipe(tmp_path, extra="num_generations: 4\n")
    with pytest.raises(RecipeError, match=r"unknown keys for a kind: sft recipe: num_generations \(line \d+\)"):
        load_sft_recipe(path)
    grpo = tmp_path / "grpo.yaml"
    grpo.write_text("model_name_or_path: conscience/tiny\n")
    with pytest.raises(RecipeError, match=r"runs `kind: sft` recipes; this one is `kind: grpo`"):
        load_sft_recipe(str(grpo))
    bad_section = _recipe(tmp_path, extra="safety:\n  budget_mode: sometimes\n")
    with pytest.raises(RecipeError, match=r"sft.yaml:\d+: safety.budget_mode must be exact or max"):
        load_sft_recipe(bad_section)


def test_env_section_is_applied_and_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("CONSCIENCE_SFT_TEST_VAR", raising=False)
    load_sft_recipe(_recipe(tmp_path, extra="env:\n  CONSCIENCE_SFT_TEST_VAR: yes-1\n"))
    assert os.environ["CONSCIENCE_SFT_TEST_VAR"] == "yes-1"
    monkeypatch.delenv("CONSCIENCE_SFT_TEST_VAR")
    with pytest.raises(RecipeError, match=r"sft.yaml:\d+: `env` must be a mapping"):
        load_sft_recipe(_recipe(tmp_path, extra="env: [A, B]\n"))


def test_bad_traces_fail_before_any_model_or_event(tmp_path):
    traces = _write(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "id": "t2", "answer": "  "}])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "conscience.sft", "--config", _recipe(tmp_path, traces=traces), "--output_dir", str(out)],
                       cwd=RUNTIME, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert f"{traces}:2: `answer` must be a non-empty string" in r.stderr
    assert not (out / "events.jsonl").exists()


def _events(out):
    with open(os.path.join(out, "events.jsonl")) as f:
        return [json.loads(x) for x in f]


def _run_sft(python, recipe, out, *extra):
    env = {**os.environ, "CONSCIENCE_HEARTBEAT_S": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([python, "-m", "conscience.sft", "--config", recipe, "--output_dir", str(out), *extra],
                          cwd=RUNTIME, capture_output=True, text=True, timeout=600, env=env)


def test_sft_run_streams_grpo_events_saves_a_model_and_resumes(tmp_path):
    recipe = _recipe(tmp_path)
    out = tmp_path / "run"
    r = _run_sft(sys.executable, recipe, out)
    assert r.returncode == 0, r.stderr[-3000:]
    ev = _events(out)
    assert [e["seq"] for e in ev] == list(range(len(ev)))
    started = ev[0]
    assert started["type"] == "run_started" and started["kind"] == "sft" and started["max_steps"] == 4
    assert started["init_from"] is None and started["resumed_from"] is None
    metrics = [e for e in ev if e["type"] == "metrics"]
    probe0 = metrics[0]
    assert probe0["step"] == 0 and "loss" not in probe0["values"]
    for key in ("rewards/safety_format_reward/mean", "rewards/safety_budget_reward/mean", "rewards/refusal_reward/mean",
                "safety/tokens_mean", "safety/budget_mean", "safety/budget_abs_err"):
        assert key in probe0["values"], key
    losses = [m for m in metrics if "loss" in m["values"]]
    assert [m["step"] for m in losses] == [2, 4] and all(m["values"]["loss"] > 0 for m in losses)
    assert "rewards/safety_format_reward/mean" in losses[-1]["values"]  # probed at the end
    assert [e["step"] for e in ev if e["type"] == "checkpoint"] == [2, 4]
    samples = [e for e in ev if e["type"] == "samples"]
    assert samples and {"prompt", "completion", "rewards", "budget", "label"} <= set(samples[0]["rows"][0])
    assert ev[-1]["type"] == "run_finished" and ev[-1]["status"] == "completed" and ev[-1]["exit_code"] == 0
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (out / f).exists(), f

    # Resume: more steps continue the same stream from the last checkpoint.
    r = _run_sft(sys.executable, recipe, out, "--max_steps", "6")
    assert r.returncode == 0, r.stderr[-3000:]
    ev2 = _events(out)
    assert [e["seq"] for e in ev2] == list(range(len(ev2)))
    assert {e["run_id"] for e in ev2} == {started["run_id"]}
    restarted = ev2[len(ev)]
    assert restarted["type"] == "run_started" and restarted["resumed_from"].endswith("checkpoint-4")
    assert [m["step"] for m in ev2[len(ev):] if m["type"] == "metrics" and "loss" in m["values"]] == [6]
    assert ev2[-1]["status"] == "completed"

    # The output is a model a GRPO recipe can name: it loads and generates with its tokenizer.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt")
    assert model.generate(ids, max_new_tokens=3, min_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3


def test_a_checkpoint_request_saves_an_sft_run_once(tmp_path):
    """SLURM's warning signal before a preemption (the batch script writes the request file): an
    SFT run saves at the next step end although its recipe never saves, as a GRPO run does, so a
    requeued SFT job resumes from there instead of losing every step since its last save."""
    recipe = _recipe(tmp_path, max_steps=2, save_strategy="no", probe_prompts=0)
    req = tmp_path / "checkpoint_request"
    req.write_text("")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONSCIENCE_CHECKPOINT_REQUEST": str(req)}
    r = subprocess.run([sys.executable, "-m", "conscience.sft", "--config", recipe, "--output_dir", str(out)],
                       cwd=RUNTIME, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not req.exists(), "the request is taken once"
    assert sorted(d for d in os.listdir(out) if d.startswith("checkpoint-")) == ["checkpoint-1"]
    assert [e["step"] for e in _events(out) if e["type"] == "checkpoint"] == [1]


def test_sft_runs_on_trl_1x(tmp_path):
    """The GPU host runs TRL 1.x with transformers 5.x: the same recipe trains there too."""
    assert os.path.exists(TRL1_PY), f"{TRL1_PY} is missing: run scripts/setup.d/trl1.sh"
    out = tmp_path / "run1"
    r = _run_sft(TRL1_PY, _recipe(tmp_path, max_steps=2, save_steps=2), out)
    assert r.returncode == 0, r.stderr[-3000:]
    ev = _events(out)
    assert ev[0]["versions"]["trl"].startswith("1.")
    assert ev[-1]["status"] == "completed"
    assert any("loss" in e.get("values", {}) for e in ev if e["type"] == "metrics")


def test_sigterm_cancels_an_sft_run_like_a_grpo_run(tmp_path):
    import signal
    import time

    recipe = _recipe(tmp_path, max_steps=10000, logging_steps=1, save_steps=10000, probe_prompts=0)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONSCIENCE_HEARTBEAT_S": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "conscience.sft", "--config", recipe, "--output_dir", str(out)],
                            cwd=RUNTIME, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 300
        while not (out / "events.jsonl").exists() or '"loss"' not in (out / "events.jsonl").read_text():
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        # A second run into the running run's output_dir is refused before it writes anything
        # (it would append the same seqs to this stream and write the same checkpoint folders).
        before = (out / "events.jsonl").read_text().count("run_started")
        second = subprocess.run([sys.executable, "-m", "conscience.sft", "--config", recipe, "--output_dir", str(out),
                                 "--max_steps", "2"], cwd=RUNTIME, capture_output=True, text=True, timeout=300,
                                env={**env, "CONSCIENCE_HEARTBEAT_S": "30"})
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"conscience.sft: {out}: another run is writing this output_dir (pid {proc.pid} since " in second.stderr
        assert (out / "events.jsonl").read_text().count("run_started") == before
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    ev = _events(out)
    assert ev[-1]["type"] == "run_finished" and ev[-1]["status"] == "cancelled"
    assert ev[-1]["exit_code"] == 143 and ev[-1]["error"] == "received SIGTERM"
    assert [e["seq"] for e in ev] == list(range(len(ev)))
    assert not (out / ".conscience.lock").exists()


def test_a_lock_left_by_a_killed_run_does_not_block_the_next_one(tmp_path):
    """A run killed with SIGKILL leaves its lock file; its pid is gone on this host, so the next
    run takes the lock (here it then stops at its bad traces, releasing it)."""
    import socket

    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    (out / ".conscience.lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "since": "x"}))
    traces = _write(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "id": "t2", "answer": "  "}])
    r = _sft(tmp_path, _recipe(tmp_path, traces=traces), out)
    assert r.returncode == 2
    assert f"{traces}:2: `answer` must be a non-empty string" in r.stderr and "another run" not in r.stderr
    assert not (out / ".conscience.lock").exists()


def _sft(tmp_path, recipe, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONSCIENCE_HEARTBEAT_S": "1"}
    return subprocess.run([sys.executable, "-m", "conscience.sft", "--config", recipe, "--output_dir", str(out)],
                          cwd=RUNTIME, capture_output=True, text=True, timeout=600, env=env)


def test_a_surrogate_in_a_trace_fails_before_any_model_or_event(tmp_path):
    traces = _write(tmp_path / "t.jsonl", [GOOD, '{"id": "t2", "prompt": "p", "label": "benign", "safety": "", "answer": "a \\ud800"}'])
    out = tmp_path / "out"
    r = _sft(tmp_path, _recipe(tmp_path, traces=traces), out)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{traces}:2: `answer` holds a lone surrogate" in r.stderr
    assert not (out / "events.jsonl").exists()


def test_traces_longer_than_max_length_are_refused_naming_the_first_and_the_count(tmp_path):
    """SFTTrainer keeps the first max_length tokens: a longer trace would train on a target cut
    inside its block (or on nothing: loss 0.0 and a run that says completed)."""
    long_prompt = "please explain the history of bread making in detail " * 12
    rows = [GOOD, {**GOOD, "id": "t2", "prompt": long_prompt}, {**GOOD, "id": "t3"}, {**GOOD, "id": "t4", "answer": "Bake. " * 80}]
    traces = _write(tmp_path / "t.jsonl", rows)
    out = tmp_path / "out"
    r = _sft(tmp_path, _recipe(tmp_path, traces=traces, max_length=96), out)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"conscience.sft: {traces}:2: trace 't2' takes " in r.stderr
    assert "but max_length is 96; 2 of the 4 traces are longer" in r.stderr
    assert not (out / "events.jsonl").exists()


def test_sft_refuses_an_output_dir_that_holds_another_kind_of_run(tmp_path):
    from conscience.events import EventWriter

    grpo = tmp_path / "grpo-run"
    w = EventWriter(str(grpo), resume=True)  # what conscience.train writes: run_started with no `kind`
    w.emit("run_started", recipe_hash="x", recipe_path="/r.yaml", world_size=1, versions={}, resumed_from=None,
           reward_funcs=["safety_format"], max_steps=4, output_dir=str(grpo), init_from=None)
    w.emit("run_finished", status="completed", exit_code=0, error=None, summary=None)
    w.close()
    (grpo / "checkpoint-4").mkdir()
    (grpo / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    before = (grpo / "events.jsonl").read_text()
    r = _sft(tmp_path, _recipe(tmp_path), grpo)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{grpo}: output_dir holds a kind: grpo run (run_id {w.run_id})" in r.stderr
    assert (grpo / "events.jsonl").read_text() == before


def test_grpo_refuses_an_output_dir_that_holds_an_sft_run(tmp_path):
    """A GRPO run pointed at an SFT run's folder would append to that run's stream and resume from
    the SFT checkpoint as if its steps were its own (reporting completed without training)."""
    from conscience.events import EventWriter

    sft = tmp_path / "sft-run"
    w = EventWriter(str(sft), resume=True)
    w.emit("run_started", kind="sft", recipe_hash="x", recipe_path="/s.yaml", world_size=1, versions={}, resumed_from=None,
           max_steps=300, output_dir=str(sft), init_from=None)
    w.emit("run_finished", status="completed", exit_code=0, error=None, summary=None)
    w.close()
    (sft / "checkpoint-300").mkdir()
    before = (sft / "events.jsonl").read_text()
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text("model_name_or_path: conscience/tiny\nreward_funcs: [safety_format]\nmax_steps: 2\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "conscience.train", "--config", str(recipe), "--output_dir", str(sft)],
                       cwd=RUNTIME, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{sft}: output_dir holds a kind: sft run (run_id {w.run_id}); a GRPO run does not resume or append" in r.stderr
    assert (sft / "events.jsonl").read_text() == before


def test_a_missing_local_model_folder_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    r = _sft(tmp_path, _recipe(tmp_path, model_name_or_path="../no-such-sft-output"), out)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"model folder not found: {tmp_path.parent / 'no-such-sft-output'}" in r.stderr
    assert "Traceback" not in r.stderr and not (out / "events.jsonl").exists()


def test_budget_source_allocator_and_clipped_budgets_are_reported(tmp_path):
    """SFT trains on each trace's own budget: a recipe's budget_source and allocator: section
    are not used (said in the log and run_started), and budgets over max_budget are clipped
    (counted)."""
    rows = [{**GOOD, "id": f"t{i}", "label": "harmful", "budget": b, "answer": "I can't help with that."}
            for i, b in enumerate([4, 40, 64, 8])] + [{k: v for k, v in GOOD.items() if k != "budget"} | {"id": "t9"}]
    traces = _write(tmp_path / "t.jsonl", rows)
    recipe = _recipe(tmp_path, traces=traces, max_steps=1, save_strategy="no", probe_prompts=0,
                     extra="safety:\n  budget_source: allocator\n  max_budget: 16\nallocator:\n  enabled: true\n")
    out = tmp_path / "out"
    r = _sft(tmp_path, recipe, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sft budgets: 4 from the traces, 1 per-label defaults; 2 clipped to max_budget 16" in r.stderr
    assert "safety.budget_source (allocator) and the allocator: section not used by SFT" in r.stderr
    budgets = _events(out)[0]["budgets"]
    assert budgets["source"] == {"dataset": 4, "allocator": 0, "label": 1}
    assert budgets["clipped"] == 2 and budgets["max_budget"] == 16 and budgets["allocator"] == "not used by sft"
    assert "not used by SFT" in budgets["note"]
