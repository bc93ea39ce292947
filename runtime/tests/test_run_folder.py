"""What conscience.train and conscience.sft refuse about output_dir and resume_from_checkpoint
before anything is written or any model loads (exit 2, the folder named), and a bad prompt set
that fails a run even when its checkpoint has nothing left to train. In-process: each check
fires before the model, so a run takes the time of reading its recipe."""

from __future__ import annotations

import json
import signal

import pytest

from conscience import sft, train
from conscience.events import EventWriter

TRACE = {"id": "t1", "prompt": "How do I bake bread?", "label": "benign", "budget": 0, "safety": "", "answer": "Knead, rise, bake."}


@pytest.fixture(autouse=True)
def _keep_pytests_signal_handlers():
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, h in handlers.items():
        signal.signal(s, h)


def _recipe(tmp_path, kind, extra=""):
    if kind == "sft":
        traces = tmp_path / "traces.jsonl"
        traces.write_text(json.dumps(TRACE) + "\n")
        text = f"kind: sft\nmodel_name_or_path: conscience/tiny\ndataset_name: {traces}\n"
    else:
        text = "model_name_or_path: conscience/tiny\ndataset_name: conscience/safety_prompts\nreward_funcs: [safety_format]\n"
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text + "max_steps: 2\nreport_to: none\nuse_cpu: true\n" + extra)
    return str(path)


def _main(kind, recipe, out, *extra, capsys):
    module = sft if kind == "sft" else train
    code = module.main(["--config", recipe, "--output_dir", str(out), *extra])
    return code, capsys.readouterr().err


def _checkpoint(folder, step, kind=None):
    """A run's folder as conscience wrote it: events.jsonl (run_started with `kind` unless GRPO) and checkpoint-<step>."""
    w = EventWriter(str(folder), resume=True)
    w.emit("run_started", **({"kind": kind} if kind else {}), recipe_hash="x", recipe_path="/r.yaml", world_size=1,
           versions={}, resumed_from=None, max_steps=step, output_dir=str(folder), init_from=None)
    w.emit("run_finished", status="completed", exit_code=0, error=None, summary=None)
    w.close()
    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt, w.run_id


@pytest.mark.parametrize("kind", ["grpo", "sft"])
def test_an_output_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path, kind, capsys):
    afile = tmp_path / "afile"
    afile.write_text("notes\n")
    code, err = _main(kind, _recipe(tmp_path, kind), afile, capsys=capsys)
    name = "train" if kind == "grpo" else "sft"
    assert code == 2, err
    assert f"conscience.{name}: {afile}: output_dir is a file" in err
    assert "Traceback" not in err and afile.read_text() == "notes\n"


@pytest.mark.parametrize("kind", ["grpo", "sft"])
def test_a_resume_from_checkpoint_that_is_no_checkpoint_is_refused_naming_it(tmp_path, kind, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere" / "checkpoint-5"
    code, err = _main(kind, _recipe(tmp_path, kind), out, "--resume_from_checkpoint", str(missing), capsys=capsys)
    assert code == 2, err
    assert f"{missing}: resume_from_checkpoint: no such checkpoint folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _main(kind, _recipe(tmp_path, kind), out, "--resume_from_checkpoint", str(empty), capsys=capsys)
    assert code == 2, err
    assert f"{empty}: resume_from_checkpoint: not a checkpoint (it holds no trainer_state.json)" in err
    assert not out.exists()


@pytest.mark.parametrize("kind,other", [("sft", None), ("grpo", "sft")])
def test_a_checkpoint_of_another_kind_of_run_is_refused_as_its_output_dir_is(tmp_path, kind, other, capsys):
    ckpt, run_id = _checkpoint(tmp_path / "other-run", 4, other)
    out = tmp_path / "out"
    code, err = _main(kind, _recipe(tmp_path, kind), out, "--resume_from_checkpoint", str(ckpt), "--max_steps", "8", capsys=capsys)
    assert code == 2, err
    assert (f"{ckpt}: resume_from_checkpoint is a checkpoint of a kind: {other or 'grpo'} run (run_id {run_id}) "
            f"in {tmp_path / 'other-run'}") in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["grpo", "sft"])
def test_another_output_dirs_checkpoint_at_max_steps_is_refused_not_completed_without_a_model(tmp_path, kind, capsys):
    ckpt, _ = _checkpoint(tmp_path / "old-run", 2, "sft" if kind == "sft" else None)
    out = tmp_path / "out"
    code, err = _main(kind, _recipe(tmp_path, kind), out, "--resume_from_checkpoint", str(ckpt), capsys=capsys)
    assert code == 2, err
    assert f"{ckpt}: resume_from_checkpoint is already at step 2 of max_steps 2: nothing is left to train" in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["grpo", "sft"])
def test_resume_false_on_an_output_dir_with_checkpoints_is_refused_leaving_them(tmp_path, kind, capsys):
    out = tmp_path / "out"
    _checkpoint(out, 2, "sft" if kind == "sft" else None)
    before = (out / "events.jsonl").read_text()
    code, err = _main(kind, _recipe(tmp_path, kind, "resume_from_checkpoint: false\n"), out, capsys=capsys)
    assert code == 2, err
    assert f"{out}: output_dir already holds checkpoints (checkpoint-2) and resume_from_checkpoint is false" in err
    assert "use another output_dir, or remove the checkpoints" in err
    assert (out / "events.jsonl").read_text() == before


def test_a_bad_prompt_set_fails_the_run_even_when_its_checkpoint_has_nothing_left_to_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "_CANCEL", {"signum": None})
    out = tmp_path / "out"
    _checkpoint(out, 2)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "x", "label": "maybe"}\n')
    code, err = _main("grpo", _recipe(tmp_path, "grpo"), out, "--dataset_name", str(prompts), capsys=capsys)
    assert code == 1, err
    finished = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()][-1]
    assert finished["type"] == "run_finished" and finished["status"] == "failed"
    assert f"{prompts}:1" in finished["error"]


def test_a_bad_prompt_file_is_one_line_naming_file_and_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    """A prompt file a user broke by hand (a JSON array, not JSONL) is bad input, not a crash:
    stderr says FILE:LINE: why in one line, and the run's run_finished error is that line
    (it was a 15-line Python traceback and "DataError: ...")."""
    monkeypatch.setattr(train, "_CANCEL", {"signum": None})
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('[{"id": "a", "prompt": "x"}]\n')
    out = tmp_path / "out"
    code, err = _main("grpo", _recipe(tmp_path, "grpo"), out, "--dataset_name", str(prompts), capsys=capsys)
    assert code == 1, err
    said = f"{prompts}:1: expected a JSON object, got list"
    assert "Traceback" not in err, err
    assert [x for x in err.splitlines() if "p.jsonl" in x] == [f"conscience.train: {said}"], err
    finished = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()][-1]
    assert finished["type"] == "run_finished" and finished["status"] == "failed" and finished["error"] == said


NO_SYSTEM = ("{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
             "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
REFUSES_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                  "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.mark.parametrize("kind", ["grpo", "sft"])
@pytest.mark.parametrize("template,why", [(NO_SYSTEM, "renders the prompt without its system message"),
                                          (REFUSES_SYSTEM, "fails on the system message that carries the budget instruction")])
def test_a_chat_template_that_never_shows_the_budget_instruction_is_refused(tmp_path, kind, template, why, capsys):
    """A template that drops the system role (or refuses it) would train against a budget the
    policy is never told: the run completed before, the budget reward scoring an unseen budget."""
    (tmp_path / "t.jinja").write_text(template)
    recipe = _recipe(tmp_path, kind, "chat_template: t.jinja\n")
    code, err = _main(kind, recipe, tmp_path / "out", capsys=capsys)
    assert code == (2 if kind == "sft" else 1), err  # sft checks before any event; grpo fails the run, naming why
    assert f"the recipe's chat_template: the chat template {why}" in err, err


def test_evaluation_on_a_single_prompt_file_is_refused_not_run_on_the_training_prompts(tmp_path, capsys):
    """A single .jsonl (or the bundled set) has no test split: dataset_test_split was ignored and
    eval_strategy evaluated the policy on the very prompts it trained on. Refused when the recipe
    is read (exit 2, FILE:LINE of eval_strategy, the validator's CC239), before any event: it
    used to fail the run once it had started, with a traceback and the strategy's enum repr."""
    recipe = _recipe(tmp_path, "grpo", "eval_strategy: steps\neval_steps: 1\n")
    code, err = _main("grpo", recipe, tmp_path / "out", capsys=capsys)
    assert code == 2, err
    line = next(i + 1 for i, text in enumerate(open(recipe).read().splitlines()) if text.startswith("eval_strategy:"))
    assert f"{recipe}:{line}: eval_strategy is 'steps', but dataset_name " in err, err
    assert "has no 'test' split: evaluation would run on the training prompts" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "events.jsonl").exists()


@pytest.mark.parametrize("kind", ["grpo", "sft"])
def test_a_second_run_into_an_output_dir_another_run_is_writing_is_refused(tmp_path, kind, capsys):
    """Two runs on one output_dir shared a run_id, reused seqs and overwrote each other's
    checkpoints, both exiting 0. The one writing it holds `.conscience.lock` (pid and host);
    another is refused before it writes anything, and a lock its dead holder left is taken over."""
    import socket
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (out / ".conscience.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now"}))
        code, err = _main(kind, _recipe(tmp_path, kind), out, capsys=capsys)
        assert code == 2, err
        assert f"another run is writing this output_dir (pid {holder.pid} since now)" in err, err
        assert not (out / "events.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # its holder gone, the lock is stale: the run goes ahead (and fails later only for want of a real model folder)
    code, err = _main(kind, _recipe(tmp_path, kind), out, "--model_name_or_path", str(tmp_path / "no-model"), capsys=capsys)
    assert "another run is writing" not in err, err
    assert not (out / ".conscience.lock").exists()  # released at the end
