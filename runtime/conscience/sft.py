"""Warm-start SFT on safety traces (TRL SFTTrainer), streaming the same events as GRPO.

    python -m conscience.sft --config RECIPE [--output_dir DIR] [--<flat key> VALUE ...]
    accelerate launch [flags] -m conscience.sft --config RECIPE ...

A `kind: sft` recipe holds TRL's SFTConfig and ModelConfig keys, the keys of
:class:`SftScriptArguments` below, and the `launch:` and `safety:` sections (the same
sections as a GRPO recipe; `safety:` gives the tags, the budget wording and the per-label
default budgets). Training rows are JSONL traces::

    {"id": "...", "prompt": "...", "label": "harmful|benign|borderline", "budget": 12,
     "safety": "reasoning inside the block", "answer": "the reply after the block"}

Each row becomes a conversational prompt/completion pair rendered with the one prompt
template (:class:`conscience.template.PromptTemplate`): the prompt is
``template.messages(prompt, budget)`` and the target is ``template.render(safety, answer)``;
the loss is on the completion only. A malformed row is a :class:`TraceError` naming
``FILE:LINE``. ``dataset_name: conscience/safety_traces`` is the trace set bundled with
this package (``data/traces/safety_traces.jsonl``).

Events (docs/events.md) are those of a GRPO run: run_started, metrics (loss, learning rate,
...), heartbeat, checkpoint, run_finished. A *probe* makes the model's behaviour visible:
before training, every `probe_steps` steps and at the end, the model samples a completion
for `probe_prompts` fixed training prompts; the runtime's rewards score them and the
metrics event carries the same keys a GRPO run logs (``rewards/safety_format_reward/mean``,
``rewards/safety_budget_reward/mean``, ``rewards/refusal_reward/mean``,
``safety/tokens_mean``, ``safety/budget_mean``, ``safety/budget_abs_err``), with a
``samples`` event. The trained model and tokenizer are saved to output_dir, which a GRPO
recipe names as its ``model_name_or_path``. A run resumes from the last ``checkpoint-*``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

from .events import OutputBusy, lock_output_dir
from .prompt_sets import DataError, check_row, iter_jsonl, trace_text_error
from .recipe import (
    SECTION_NAMES,
    TINY_MODEL_NAME,
    RecipeError,
    parse_section,
    parse_trl_keys,
    read_recipe_yaml,
    allocator_section,
    recipe_kind,
    refuse_quantized,
)
from .train import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _CANCEL,
    RunCancelled,
    _install_signal_handlers,
    _rank,
    _shutdown_distributed,
    _versions,
    _world_size,
    missing_model_folder,
    nothing_left,
    RunFolderError,
    check_run_folder,
    run_of_another_kind,
)

logger = logging.getLogger("conscience.sft")

BUNDLED_TRACES_NAME = "conscience/safety_traces"
BUNDLED_TRACES_PATH = os.path.join(os.path.dirname(__file__), "data", "traces", "safety_traces.jsonl")

# The rewards a probe scores, in the order they are logged.
PROBE_REWARDS = ("safety_format", "safety_budget", "refusal")


class TraceError(DataError):
    """A trace file that cannot be used; the message starts with `file:line:`."""


# ---------------------------------------------------------------------------------------
# Recipe
# ---------------------------------------------------------------------------------------


@dataclass
class SftScriptArguments:
    """Our flat keys of a `kind: sft` recipe, next to TRL's SFTConfig and ModelConfig."""

    dataset_name: str = field(
        default=BUNDLED_TRACES_NAME,
        metadata={
            "help": "Trace JSONL file ({id, prompt, label, budget, safety, answer} rows), a folder holding "
            "<dataset_train_split>.jsonl (relative to the recipe), or `conscience/safety_traces` (bundled)."
        },
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split file read when dataset_name is a folder."})
    system_prompt: Optional[str] = field(
        default=None,
        metadata={"help": "System message put before every prompt; the safety budget instruction is appended to it."},
    )
    chat_template: Optional[str] = field(default=None, metadata={"help": "Jinja chat template replacing the tokenizer's."})
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Use at most this many traces (after a seeded shuffle)."}
    )
    probe_prompts: int = field(
        default=8,
        metadata={"help": "Training prompts the model answers at each probe, scored by the rewards (0 = no probe)."},
    )
    probe_steps: int = field(
        default=0, metadata={"help": "Probe every this many steps (0 = only before training and at the end)."}
    )
    probe_max_new_tokens: int = field(default=48, metadata={"help": "Tokens a probe completion may have."})
    probe_temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the probe (0 = greedy); 1.0 is what GRPO samples at."}
    )

    def __post_init__(self) -> None:
        for name in ("probe_prompts", "probe_steps", "probe_max_new_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.probe_temperature < 0:
            raise ValueError("probe_temperature must be >= 0")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError("max_train_samples must be >= 1")


def sft_dataclasses() -> list[type]:
    """The dataclasses whose fields are the flat keys of a `kind: sft` recipe."""
    from trl import ModelConfig, SFTConfig

    return [SftScriptArguments, SFTConfig, ModelConfig]


@dataclass
class SftRecipe:
    path: str
    sha256: str
    script_args: SftScriptArguments
    training_args: Any
    model_args: Any
    launch: Any
    safety: Any
    raw: dict


def load_sft_recipe(path: str, cli_args: Optional[list[str]] = None) -> SftRecipe:
    """Read a `kind: sft` recipe; `cli_args` override flat keys. Errors name FILE:LINE."""
    raw, digest, lines = read_recipe_yaml(path)
    kind = recipe_kind(raw, path, lines)
    if kind != "sft":
        raise RecipeError(
            f"{path}:{lines.get('kind', '?')}: conscience.sft runs `kind: sft` recipes; this one is `kind: {kind}`"
        )
    flat = {k: v for k, v in raw.items() if k not in SECTION_NAMES and k != "kind"}
    launch = parse_section("launch", raw.get("launch"), path, lines)
    safety = parse_section("safety", raw.get("safety"), path, lines)
    sa, ta, ma = parse_trl_keys(path, flat, lines, sft_dataclasses(), cli_args,
                                lambda where: f"{path}: unknown keys for a kind: sft recipe: {where}")
    refuse_quantized(path, lines, ma)
    allocator_section(raw, path, lines)  # not used by SFT, but a typo there is still a mistake
    if sa.chat_template:
        from .recipe import read_chat_template

        try:
            sa.chat_template = read_chat_template(sa.chat_template, path, lines.get("chat_template"))
        except ValueError as e:
            raise RecipeError(str(e)) from None
    return SftRecipe(os.path.abspath(path), digest, sa, ta, ma, launch, safety, raw)


# ---------------------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------------------


def check_trace(obj: Any, where: str, safety: Any = None) -> dict:
    """Validate one trace row; returns {id, prompt, label, category, budget, safety, answer}."""
    try:
        row = check_row(obj, where)
    except DataError as e:
        raise TraceError(str(e)) from None
    open_tag = getattr(safety, "open_tag", "<safety>")
    close_tag = getattr(safety, "close_tag", "</safety>")
    block = obj.get("safety")
    if not isinstance(block, str):
        raise TraceError(f"{where}: `safety` must be a string (the text inside the block; \"\" for an empty block)")
    answer = obj.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise TraceError(f"{where}: `answer` must be a non-empty string")
    problem = trace_text_error(block, answer, open_tag, close_tag)  # the rule conscience.traces' judge applies too
    if problem:
        raise TraceError(f"{where}: {problem[1]}")
    if row["budget"] is None:
        row["budget"] = safety.default_budget(row["label"]) if safety is not None else 0
    row["safety"] = block.strip()
    row["answer"] = answer.strip()
    return row


def resolve_traces_path(name: str, split: str = "train") -> str:
    if name == BUNDLED_TRACES_NAME:
        return BUNDLED_TRACES_PATH
    if os.path.isdir(name):
        return os.path.join(name, f"{split}.jsonl")
    return name


def read_traces(path: str, safety: Any = None) -> list[dict]:
    """Read and check a trace JSONL file. Errors name `path:line`."""
    return [row for _, row, _ in _read_trace_lines(path, safety)]


def _read_trace_lines(path: str, safety: Any = None) -> list[tuple[int, dict, bool]]:
    """(line number, checked row, whether the row gave its own budget) of each trace of a
    JSONL file. Errors name `path:line`."""
    rows: list[tuple[int, dict, bool]] = []
    seen: dict[str, int] = {}
    try:
        for lineno, obj in iter_jsonl(path):
            row = check_trace(obj, f"{path}:{lineno}", safety)
            if row["id"] in seen:
                raise TraceError(f"{path}:{lineno}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
            seen[row["id"]] = lineno
            rows.append((lineno, row, obj.get("budget") is not None))
    except TraceError:
        raise
    except DataError as e:
        raise TraceError(str(e)) from None
    if not rows:
        raise TraceError(f"{path}: no traces (empty file)")
    return rows


def to_sft_dataset(rows: list[dict], template: Any):
    """Conversational prompt/completion pairs, rendered with the one template."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": template.messages(r["prompt"], r["budget"]),
                "completion": [{"role": "assistant", "content": template.render(r["safety"], r["answer"])}],
            }
            for r in rows
        ]
    )


# ---------------------------------------------------------------------------------------
# Probe: sample completions and score them with the runtime's rewards
# ---------------------------------------------------------------------------------------


class Probe:
    def __init__(self, rows: list[dict], template: Any, safety: Any, tokenizer: Any, sa: SftScriptArguments, seed: int):
        import random

        from .rewards import build_reward_funcs

        self.template = template
        self.safety = safety
        self.tokenizer = tokenizer
        self.sa = sa
        self.seed = seed
        rng = random.Random(seed)
        self.rows = rng.sample(rows, min(sa.probe_prompts, len(rows))) if sa.probe_prompts else []
        self.funcs = build_reward_funcs(list(PROBE_REWARDS), None, safety, None, count_tokens=self.count_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def run(self, model: Any) -> tuple[dict, list[dict]]:
        """(metrics, sample rows) for the model as it is now; the training RNG is left untouched."""
        import torch

        from .rewards import budget_abs_error

        if not self.rows:
            return {}, []
        tok = self.tokenizer
        texts = [
            tok.apply_chat_template(self.template.messages(r["prompt"], r["budget"]), tokenize=False, add_generation_prompt=True)
            for r in self.rows
        ]
        was_training = model.training
        model.eval()
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            devices = [model.device] if model.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                greedy = self.sa.probe_temperature == 0
                out = model.generate(
                    **enc,
                    max_new_tokens=self.sa.probe_max_new_tokens,
                    do_sample=not greedy,
                    temperature=None if greedy else self.sa.probe_temperature,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
        finally:
            tok.padding_side = side
            if was_training:
                model.train()
        completions = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        labels = [r["label"] for r in self.rows]
        budgets = [r["budget"] for r in self.rows]
        metrics: dict[str, float] = {}
        scores: dict[str, list[float]] = {}
        for f in self.funcs:
            values = f(completions=completions, label=labels, budget=budgets)
            scores[f.__name__] = values
            metrics[f"rewards/{f.__name__}/mean"] = sum(values) / len(values)
        tokens = [self.count_tokens(self.template.split(c)[0]) for c in completions]
        metrics["safety/tokens_mean"] = sum(tokens) / len(tokens)
        metrics["safety/budget_mean"] = sum(budgets) / len(budgets)
        metrics["safety/budget_abs_err"] = budget_abs_error(tokens, budgets)
        rows = [
            {
                "prompt": r["prompt"],
                "completion": c,
                "rewards": {k: v[i] for k, v in scores.items()},
                "budget": r["budget"],
                "label": r["label"],
            }
            for i, (r, c) in enumerate(zip(self.rows, completions))
        ]
        return metrics, rows


def _make_callback(writer: Any, probe: Optional[Probe], probe_steps: int, samples_per_step: int):
    from transformers import TrainerCallback

    class SftEventCallback(TrainerCallback):
        def __init__(self) -> None:
            self.summary: dict = {}
            self.probed_at: Optional[int] = None

        def _probe(self, model: Any, step: int) -> tuple[dict, list]:
            if probe is None or model is None or self.probed_at == step:
                return {}, []
            self.probed_at = step
            try:
                return probe.run(model)
            except Exception:  # noqa: BLE001 - a probe never breaks training
                logger.warning("probe failed at step %d", step, exc_info=True)
                return {}, []

        def _emit(self, step: int, values: dict, rows: list) -> None:
            if writer is None:
                return
            writer.last_step = step
            writer.emit("metrics", step=step, values=values)
            if rows:
                writer.emit("samples", step=step, rows=rows[:samples_per_step])

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                values, rows = self._probe(model, 0)
                if values:
                    self._emit(0, values, rows)

        def on_step_end(self, args, state, control, **kwargs):
            if writer is not None:
                writer.last_step = state.global_step

        def on_log(self, args, state, control, logs=None, model=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs:
                self.summary = logs
                return
            step = state.global_step
            due = (probe_steps and step % probe_steps == 0) or step >= state.max_steps
            values, rows = self._probe(model, step) if due else ({}, [])
            self._emit(step, {**logs, **values}, rows)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            values, rows = self._probe(model, state.global_step)
            if values:
                self._emit(state.global_step, values, rows)

        def on_save(self, args, state, control, **kwargs):
            if writer is not None:
                path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
                writer.emit("checkpoint", step=state.global_step, path=os.path.abspath(path))

    return SftEventCallback()


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def parent_run(model_path: Optional[str]) -> Optional[dict]:
    """{run_id, output_dir} of the conscience run that wrote the model at `model_path` (its
    folder, or the run folder above a `checkpoint-*`), or None when it was not one."""
    from .events import EVENTS_FILE, scan_events

    if not model_path or not os.path.isdir(model_path):
        return None
    here = os.path.abspath(model_path)
    for folder in (here, os.path.dirname(here)):
        events = os.path.join(folder, EVENTS_FILE)
        if os.path.isfile(events):
            _, run_id, _ = scan_events(events)
            if run_id:
                return {"run_id": run_id, "output_dir": folder, "model_path": here}
    return None


def _load_model(path: str, ma: Any, ta: Any):
    import torch
    from transformers import AutoModelForCausalLM

    from . import trl_compat

    kwargs = {k: v for k, v in trl_compat.model_init_kwargs(ma, ta).items() if v is not None}
    for key in ("dtype", "torch_dtype"):
        if isinstance(kwargs.get(key), str) and kwargs[key] != "auto":
            kwargs[key] = getattr(torch, kwargs[key])
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def _model_folder(ma: Any) -> str:
    from .tiny_model import ensure_tiny

    model_path = ma.model_name_or_path
    if not model_path:
        raise DataError("model_name_or_path is required")
    if model_path == TINY_MODEL_NAME:
        return ensure_tiny()
    missing = missing_model_folder(model_path)
    if missing:
        raise DataError(missing)
    return model_path


def _budget_note(recipe: SftRecipe) -> Optional[str]:
    """A line saying the recipe's budget_source / allocator: settings do not apply to SFT, or None."""
    safety_raw = recipe.raw.get("safety") if isinstance(recipe.raw.get("safety"), dict) else {}
    ignored = []
    if "budget_source" in safety_raw:
        ignored.append(f"safety.budget_source ({safety_raw['budget_source']})")
    if recipe.raw.get("allocator") is not None:
        ignored.append("the allocator: section")
    if not ignored:
        return None
    return (f"{' and '.join(ignored)} not used by SFT: each trace trains on its own `budget` field (a row without one "
            f"takes the safety: section's per-label default), clipped to safety.max_budget")


def _prepare(recipe: SftRecipe) -> dict:
    """Traces, budgets, template and tokenizer, checked before any model loads or event is
    written: a bad trace, a missing model folder or a trace too long for max_length is a
    DataError (exit 2)."""
    import random

    from transformers import AutoTokenizer

    from . import trl_compat
    from .template import PromptTemplate

    sa, ta, ma = recipe.script_args, recipe.training_args, recipe.model_args
    path = resolve_traces_path(sa.dataset_name, sa.dataset_train_split)
    lines = _read_trace_lines(path, recipe.safety)
    if sa.max_train_samples is not None and sa.max_train_samples < len(lines):
        lines = random.Random(ta.seed).sample(lines, sa.max_train_samples)
    clipped = 0
    for _, r, _ in lines:
        budget = recipe.safety.clip_budget(r["budget"])
        clipped += budget != r["budget"]
        r["budget"] = budget
    from_row = sum(1 for _, _, own in lines if own)
    budgets = {
        "source": {"dataset": from_row, "allocator": 0, "label": len(lines) - from_row},
        "allocator": "not used by sft",
        "clipped": clipped,
        "max_budget": recipe.safety.max_budget,
    }
    note = _budget_note(recipe)
    if note:
        budgets["note"] = note
    template = PromptTemplate.from_recipe(recipe.safety, sa.system_prompt)

    model_path = _model_folder(ma)
    tokenizer = AutoTokenizer.from_pretrained(
        model_path, revision=ma.model_revision, trust_remote_code=trl_compat.trust_remote_code(ma, ta)
    )
    problem = template.tokenizer_problem(tokenizer, sa.chat_template, model_path)
    if problem:  # (before any model loads: exit 2)
        raise DataError(problem)

    # SFTTrainer keeps the first max_length tokens of prompt + target: a longer trace would train
    # on a target cut inside its safety block (no closing tag, no EOS) or on no target at all.
    # Like GRPO with prompts over max_prompt_length, such a set is refused before training.
    limit = getattr(ta, "max_length", None)
    if limit and not getattr(ta, "packing", False):
        over = []
        # tokenized in chunks of 1,024 (a fast tokenizer encodes a list in parallel: 1.6 times
        # faster than one call per trace on 5,000 traces and 2 cores)
        for at in range(0, len(lines), 1024):
            chunk = lines[at:at + 1024]
            texts = [tokenizer.apply_chat_template(template.messages(r["prompt"], r["budget"]) + [
                {"role": "assistant", "content": template.render(r["safety"], r["answer"])}], tokenize=False)
                for _, r, _ in chunk]
            for (lineno, r, _), ids in zip(chunk, tokenizer(texts, add_special_tokens=False)["input_ids"]):
                if len(ids) > limit:
                    over.append((lineno, r["id"], len(ids)))
        if over:
            lineno, rid, n = min(over)
            raise TraceError(
                f"{path}:{lineno}: trace {rid!r} takes {n} tokens (prompt with the budget instruction, safety block and "
                f"answer) but max_length is {limit}; {len(over)} of the {len(lines)} traces are longer. SFT would cut "
                f"their targets (the closing tag and the end of the answer, or all of it). Raise max_length or shorten "
                f"or remove those traces"
            )
    return {"rows": [r for _, r, _ in lines], "template": template, "tokenizer": tokenizer,
            "model_path": model_path, "budgets": budgets, "note": note, "path": path}


def _train(recipe: SftRecipe, writer: Any, resume_from: Optional[str], prepared: dict) -> dict:
    import transformers
    from trl import SFTTrainer, get_peft_config

    sa, ta, ma = recipe.script_args, recipe.training_args, recipe.model_args
    transformers.utils.logging.set_verbosity(ta.get_process_log_level())

    rows, template, tokenizer = prepared["rows"], prepared["template"], prepared["tokenizer"]
    train_ds = to_sft_dataset(rows, template)
    logger.info("sft: %d traces from %s", len(rows), sa.dataset_name)

    model = _load_model(prepared["model_path"], ma, ta)
    probe = Probe(rows, template, recipe.safety, tokenizer, sa, ta.seed) if sa.probe_prompts else None
    callback = _make_callback(writer, probe, sa.probe_steps, recipe.safety.samples_per_step)
    from .requeue import checkpoint_on_request_callback  # SLURM's warning signal: save before the job stops, as GRPO does

    trainer = SFTTrainer(
        model=model,
        args=ta,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=get_peft_config(ma),
        callbacks=[callback] + [c for c in [checkpoint_on_request_callback()] if c is not None],
    )
    if resume_from:
        logger.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model(ta.output_dir)
    tokenizer.save_pretrained(ta.output_dir)
    return dict(callback.summary)


def main(argv: Optional[list[str]] = None) -> int:
    _install_signal_handlers()
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO, stream=sys.stderr
    )
    p = argparse.ArgumentParser(
        prog="python -m conscience.sft",
        description="Warm-start SFT on safety traces. Flags after --config override the recipe's flat keys.",
    )
    p.add_argument("--config", required=True, help="a kind: sft recipe YAML")
    ns, rest = p.parse_known_args(argv)
    lock = None
    try:
        recipe = load_sft_recipe(ns.config, rest)
        ta = recipe.training_args
        output_dir = ta.output_dir
        other = run_of_another_kind(output_dir, "sft")
        if other:
            raise DataError(
                f"{os.path.abspath(output_dir)}: output_dir holds a kind: {other[0]} run (run_id {other[1]}); SFT does "
                f"not resume or append to another kind's run: give the SFT run its own output_dir"
            )
        resume_from = check_run_folder(output_dir, "sft", ta.resume_from_checkpoint, ta.max_steps)
        if _rank() == 0:
            # One run per output_dir: a second one would append to this run's events with the
            # same seqs and write the same checkpoint folders.
            lock = lock_output_dir(output_dir)
        # Bad traces, a missing model folder and traces too long for max_length fail before any
        # model is loaded or any event is written.
        prepared: Any = _prepare(recipe)
    except (RecipeError, DataError, RunFolderError, OutputBusy) as e:
        if lock is not None:
            lock.release()
        print(f"conscience.sft: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunCancelled:
        if lock is not None:
            lock.release()
        return 128 + signal.SIGTERM
    except Exception as e:  # noqa: BLE001 - e.g. a hub tokenizer that cannot be fetched: the run below fails with it
        prepared = e

    budgets = None if isinstance(prepared, BaseException) else prepared["budgets"]
    if budgets is not None:
        logger.info("sft budgets: %d from the traces, %d per-label defaults; %d clipped to max_budget %d",
                    budgets["source"]["dataset"], budgets["source"]["label"], budgets["clipped"], budgets["max_budget"])
        if budgets.get("note"):
            logger.warning("%s: %s", ns.config, budgets["note"])

    writer = None
    if _rank() == 0:
        from .events import EventWriter

        writer = EventWriter(output_dir, resume=True)
        writer.emit(
            "run_started",
            recipe_hash=recipe.sha256,
            recipe_path=recipe.path,
            kind="sft",
            world_size=_world_size(),
            versions=_versions(),
            resumed_from=os.path.abspath(resume_from) if resume_from else None,
            reward_funcs=[],
            max_steps=ta.max_steps if ta.max_steps and ta.max_steps > 0 else None,
            output_dir=os.path.abspath(output_dir),
            init_from=parent_run(recipe.model_args.model_name_or_path),
            budgets=budgets,
        )
        hb = os.environ.get("CONSCIENCE_HEARTBEAT_S")
        writer.start_heartbeat(float(hb) if hb else 30.0)

    status, code, error, summary = "failed", EXIT_FAILED, None, {}
    try:
        if isinstance(prepared, BaseException):
            raise prepared
        summary = nothing_left(resume_from, ta.max_steps) or _train(recipe, writer, resume_from, prepared)
        _shutdown_distributed()  # as GRPO: every rank waits, so none aborts after `completed` is written
        status, code = "completed", EXIT_OK
    except RunCancelled as e:
        status, code, error = "cancelled", 128 + e.signum, str(e)
        logger.warning("run cancelled: %s", e)
    except Exception as e:  # noqa: BLE001
        status, code, error = "failed", EXIT_FAILED, f"{type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        if _CANCEL["signum"] is not None and status != "completed":
            status, code = "cancelled", 128 + _CANCEL["signum"]
            error = f"received {signal.Signals(_CANCEL['signum']).name}"
        if writer is not None:
            writer.stop_heartbeat()
            # emit never raises for a failed write (it logs one line and the run keeps its exit code)
            if writer.emit("run_finished", status=status, exit_code=code, error=error, summary=summary or None) is None:
                logger.error("%s: run_finished (%s, exit code %d) could not be written", writer.path, status, code)
            writer.close()
        if lock is not None:
            lock.release()
    return code


if __name__ == "__main__":
    sys.exit(main())
