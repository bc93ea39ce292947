"""GRPO training with decoupled safety reasoning (TRL GRPOTrainer), streaming docs/events.md.

    accelerate launch [accelerate flags] -m conscience.train --config RECIPE [--output_dir DIR] [--<flat key> VALUE ...]
    python -m conscience.train --config RECIPE ...           (single process, no launcher)

The recipe is read by :mod:`conscience.recipe`; flags after `--config` override its flat keys.
Rank 0 writes `<output_dir>/events.jsonl`. A run resumes from the last `checkpoint-*` in
output_dir (or `resume_from_checkpoint`) and continues the event stream. SIGTERM or SIGINT ends
the run with `run_finished` status `cancelled` and exit code 143 (130 for SIGINT); `failed`, with
the launcher's reason as the error, when the launcher stopped it because its vLLM server ended
(the file named by CONSCIENCE_STOP_REASON holds the reason).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import sys
import threading
import traceback
from typing import Any, Optional

logger = logging.getLogger("conscience.train")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class RunCancelled(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT; BaseException so library code does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


_CANCEL = {"signum": None}


def _install_signal_handlers() -> None:
    def handler(signum: int, frame: Any) -> None:
        if _CANCEL["signum"] is not None:
            return  # already unwinding; do not interrupt the cleanup
        _CANCEL["signum"] = signum
        raise RunCancelled(signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _stop_reason() -> str | None:
    """Why the launcher stopped this run, when it was not a cancel: conscience.launch (and the
    SLURM script) write one line to the file named by CONSCIENCE_STOP_REASON before the SIGTERM
    (a vLLM server that exited before training ended). None when no such file was written."""
    path = os.environ.get("CONSCIENCE_STOP_REASON")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(4000).strip()
    except OSError:
        return None
    return text or None


def _rank() -> int:
    for key in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def _world_size() -> int:
    v = os.environ.get("WORLD_SIZE", "1")
    return int(v) if v.isdigit() else 1


def _versions(modules: tuple[str, ...] = ("torch", "transformers", "trl", "accelerate")) -> dict[str, str]:
    """run_started.versions: Python, each of `modules` ("missing" when it does not import), conscience."""
    out = {"python": platform.python_version()}
    for mod in modules:
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = "missing"
    from . import __version__

    out["conscience"] = __version__
    return out


# ---------------------------------------------------------------------------------------
# Samples: what the reward functions saw, for `samples` events and safety metrics
# ---------------------------------------------------------------------------------------


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return str(users[-1])
        return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))
    return str(prompt)


SAMPLE_TEXT_MAX = 4000  # characters kept of each prompt / completion in a `samples` row


def _clip(text: str) -> str:
    return text if len(text) <= SAMPLE_TEXT_MAX else text[:SAMPLE_TEXT_MAX] + "…"


class SampleRecorder:
    """Captures prompts, completions and per-reward scores of each generation batch."""

    def __init__(self, safety: Any, count_tokens, keep_batches: int = 4) -> None:
        self.safety = safety
        self.count_tokens = count_tokens
        self.keep = keep_batches
        self.batches: list[dict] = []
        # safety statistics of the batches dropped from `batches` since the last take (only
        # `keep` batches are held whole, for sample rows; the means cover every batch)
        self._dropped: tuple[list[int], list[float], list[float]] = ([], [], [])
        self._lock = threading.Lock()

    def record(self, index: int, name: str, prompts: Any, completions: Any, kwargs: dict, rewards: Any) -> None:
        try:
            with self._lock:
                if index == 0 or not self.batches:
                    n = len(completions)
                    self.batches.append(
                        {
                            "prompts": list(prompts or [None] * n),
                            "completions": list(completions),
                            "labels": list(kwargs.get("safety_label") or kwargs.get("label") or [None] * n),
                            "budgets": list(kwargs.get("budget") or [None] * n),
                            "rewards": {},
                        }
                    )
                    for dropped in self.batches[: -self.keep]:
                        for acc, xs in zip(self._dropped, self._stats(dropped)):
                            acc.extend(xs)
                    del self.batches[: -self.keep]
                self.batches[-1]["rewards"][name] = list(rewards)
        except Exception:  # noqa: BLE001 - recording never breaks training
            logger.debug("sample recording failed", exc_info=True)

    def _stats(self, b: dict) -> tuple[list[int], list[float], list[float]]:
        """Safety-block tokens, budgets and |tokens - budget| (docs/events.md) of one batch's completions."""
        from .rewards import completion_text, parse_safety

        tokens: list[int] = []
        budgets: list[float] = []
        abs_errs: list[float] = []
        for i, c in enumerate(b["completions"]):
            p = parse_safety(completion_text(c), self.safety.open_tag, self.safety.close_tag)
            try:
                used: Optional[int] = self.count_tokens(p.reasoning) if p.reasoning else 0
                tokens.append(used)
            except Exception:  # noqa: BLE001
                used = None
            bud = b["budgets"][i] if i < len(b["budgets"]) else None
            if isinstance(bud, (int, float)):
                budgets.append(float(bud))
                if used is not None:
                    abs_errs.append(abs(used - float(bud)))
        return tokens, budgets, abs_errs

    def take(self, max_rows: int) -> tuple[list[dict], dict[str, float]]:
        """Rows for a `samples` event and safety metrics over the batches since the last take."""
        from .rewards import completion_text, parse_safety

        with self._lock:
            batches, self.batches = self.batches, []
            (tokens, budgets, abs_errs), self._dropped = self._dropped, ([], [], [])
        rows: list[dict] = []
        for b in batches:
            for acc, xs in zip((tokens, budgets, abs_errs), self._stats(b)):
                acc.extend(xs)
        if batches:
            last = batches[-1]
            for i, c in enumerate(last["completions"][:max_rows]):
                text = completion_text(c)
                p = parse_safety(text, self.safety.open_tag, self.safety.close_tag)
                try:
                    used = self.count_tokens(p.reasoning) if p.reasoning else 0
                except Exception:  # noqa: BLE001
                    used = None
                # each text is clipped, so a logged step's rows stay bounded on disk
                rows.append(
                    {
                        "prompt": _clip(_prompt_text(last["prompts"][i] if i < len(last["prompts"]) else "")),
                        "completion": _clip(text),
                        "safety": _clip(p.reasoning) if p.has_open else None,
                        "answer": _clip(p.answer),
                        "safety_tokens": used,
                        "rewards": {k: (v[i] if i < len(v) else None) for k, v in last["rewards"].items()},
                        "budget": last["budgets"][i] if i < len(last["budgets"]) else None,
                        "label": last["labels"][i] if i < len(last["labels"]) else None,
                    }
                )
        metrics = {}
        if tokens:
            metrics["safety/tokens_mean"] = sum(tokens) / len(tokens)
        if budgets:
            metrics["safety/budget_mean"] = sum(budgets) / len(budgets)
        if abs_errs:
            metrics["safety/budget_abs_err"] = sum(abs_errs) / len(abs_errs)
        return rows, metrics


def _recording(func, index: int, recorder: SampleRecorder, training=lambda: True):
    """`func`, recording what it scored while `training()` says the trainer trains. TRL calls the
    rewards during evaluation too (the eval split's completions, logged as eval_rewards/...): those
    are not training samples and must not enter `samples` rows or the safety/* means."""

    def reward(prompts=None, completions=(), **kwargs):
        out = func(prompts=prompts, completions=completions, **kwargs)
        if training():
            recorder.record(index, func.__name__, prompts, completions, kwargs, out)
        return out

    reward.__name__ = func.__name__
    reward.__qualname__ = func.__name__
    reward.__doc__ = func.__doc__
    return reward


def _make_callback(writer, recorder: SampleRecorder, samples_per_step: int):
    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        """Turns the trainer's logs, saves and steps into events (rank 0 has the writer)."""

        def __init__(self) -> None:
            self.summary: dict = {}

        def on_step_end(self, args, state, control, **kwargs):
            if writer is not None:
                writer.last_step = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs:  # the end-of-training summary, not a step's metrics
                self.summary = logs
                return
            # an evaluation's metrics (eval_*): the training batches since the last training log
            # stay for that log, where their safety/* means and samples belong
            evaluation = any(str(k).startswith("eval_") for k in logs)
            rows, safety_metrics = ([], {}) if evaluation else recorder.take(samples_per_step)
            if writer is None:
                return
            writer.last_step = state.global_step
            values = {**logs, **safety_metrics}
            writer.emit("metrics", step=state.global_step, values=values)
            if rows:
                writer.emit("samples", step=state.global_step, rows=rows)

        def on_save(self, args, state, control, **kwargs):
            if writer is not None:
                path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
                writer.emit("checkpoint", step=state.global_step, path=os.path.abspath(path))

    return EventCallback()


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def _last_checkpoint(output_dir: str) -> Optional[str]:
    from transformers.trainer_utils import get_last_checkpoint

    if os.path.isdir(output_dir):
        try:
            return get_last_checkpoint(output_dir)
        except Exception:  # noqa: BLE001
            return None
    return None


def resolve_resume(value: Any, output_dir: str) -> Optional[str]:
    """`resume_from_checkpoint` as a recipe or the command line gives it: YAML's true/false (or
    the strings "true"/"false", "1"/"0", "yes"/"no") switch resuming from the output dir's last
    checkpoint on or off; a path is that checkpoint; unset resumes from the last one if any."""
    switch = _resume_switch(value)
    if switch is not None:
        return _last_checkpoint(output_dir) if switch else None
    return value or _last_checkpoint(output_dir)


def _resume_switch(value: Any) -> Optional[bool]:
    """`resume_from_checkpoint` read as a switch: True (YAML's true, "true", "1", "yes"), False
    (false, "false", "0", "no", ""), None for a path or unset."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("false", "0", "no", ""):
        return False
    if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
        return True
    return None


class RunFolderError(ValueError):
    """output_dir or resume_from_checkpoint refused before anything is written (exit 2)."""


def _checkpoint_folders(output_dir: str) -> list[str]:
    """The `checkpoint-<step>` folders in output_dir, by step."""
    import re

    try:
        names = os.listdir(output_dir)
    except OSError:
        return []
    found = [n for n in names if re.fullmatch(r"checkpoint-\d+", n) and os.path.isdir(os.path.join(output_dir, n))]
    return sorted(found, key=lambda n: int(n.split("-")[1]))


def check_run_folder(output_dir: str, kind: str, resume_value: Any, max_steps: int) -> Optional[str]:
    """The checkpoint the run resumes from (resolve_resume), after refusing what would go wrong
    once the run started: an output_dir that is a file; resume_from_checkpoint false where
    output_dir already holds checkpoints (they would be rewritten in place and the run's event
    stream continued as if one run); a resume_from_checkpoint path that is no checkpoint, or is
    another kind's, or is another output_dir's checkpoint already at max_steps (nothing would be
    trained and this output_dir would get no model). Raises RunFolderError."""
    out = os.path.abspath(output_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"{out}: output_dir is a file")
    name = "a GRPO run" if kind == "grpo" else "an SFT run"
    if _resume_switch(resume_value) is False:
        own = _checkpoint_folders(out)
        if own:
            shown = ", ".join(own[:3]) + (f" and {len(own) - 3} more" if len(own) > 3 else "")
            raise RunFolderError(
                f"{out}: output_dir already holds checkpoints ({shown}) and resume_from_checkpoint is false: the new run "
                "would overwrite them and continue their run's events.jsonl; use another output_dir, or remove the "
                "checkpoints (and events.jsonl) to start over there")
        return None
    resume_from = resolve_resume(resume_value, output_dir)
    explicit = isinstance(resume_value, str) and _resume_switch(resume_value) is None  # a path the recipe names
    if not (explicit and resume_from):
        return resume_from
    path = os.path.abspath(resume_from)
    if not os.path.isdir(path):
        raise RunFolderError(f"{path}: resume_from_checkpoint: no such checkpoint folder")
    if not os.path.isfile(os.path.join(path, "trainer_state.json")):
        raise RunFolderError(f"{path}: resume_from_checkpoint: not a checkpoint (it holds no trainer_state.json)")
    parent = os.path.dirname(path)
    other = run_of_another_kind(parent, kind)
    if other:
        raise RunFolderError(
            f"{path}: resume_from_checkpoint is a checkpoint of a kind: {other[0]} run (run_id {other[1]}) in {parent}; "
            f"{name} does not resume another kind's run (to start from that run's model, name its output folder as "
            "model_name_or_path)")
    done = _checkpoint_step(path)
    if parent != out and done is not None and 0 < max_steps <= done:
        raise RunFolderError(
            f"{path}: resume_from_checkpoint is already at step {done} of max_steps {max_steps}: nothing is left to train "
            f"and {out} would get no model; raise max_steps, or name the checkpoint as model_name_or_path to train on from it")
    return resume_from


def run_of_another_kind(output_dir: str, kind: str) -> Optional[tuple[str, Optional[str]]]:
    """(kind, run_id) of the run whose event stream is in output_dir when it is not a `kind` run
    (a GRPO run_started has no `kind`), else None. Only the file's lines up to its first
    run_started are read."""
    from .events import EVENTS_FILE

    try:
        with open(os.path.join(output_dir, EVENTS_FILE), "rb") as f:
            for raw in f:
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(ev, dict) and ev.get("type") == "run_started":
                    found = str(ev.get("kind") or "grpo")
                    return None if found == kind else (found, ev.get("run_id"))
    except OSError:
        return None
    return None


def missing_model_folder(path: str) -> Optional[str]:
    """Why `path` (model_name_or_path) cannot be loaded when it is meant as a folder here but is
    not there, else None. Meant as a folder: absolute, ./ or ../ (the recipe loader makes a
    relative one absolute); `owner/name` is a hub id even where a folder `owner/` exists, as
    transformers reads it. Such a path would otherwise go to the hub and fail there with a
    message about repo ids."""
    local = os.path.isabs(path) or path.startswith(("./", "../", ".\\", "..\\"))
    if not local or os.path.exists(path):
        return None
    return (
        f"model folder not found: {path} (model_name_or_path; a relative path in a recipe is relative to "
        f"the recipe's folder, an output_dir to the folder the command ran in: {os.getcwd()})"
    )


def nothing_left(resume_from: Optional[str], max_steps: int) -> Optional[dict]:
    """The run's summary when its checkpoint already reached max_steps (transformers would still
    train one more step: a completed run of 400 resumed as "step 401 of 400", issue #16), else None."""
    done = _checkpoint_step(resume_from)
    if done is None or not 0 < max_steps <= done:
        return None
    logger.info("%s is at step %d of max_steps %d: nothing left to train", resume_from, done, max_steps)
    return {"global_step": done, "trained": False}


def _checkpoint_step(path: Optional[str]) -> Optional[int]:
    """The global step a checkpoint folder was saved at (its trainer_state.json), or None."""
    if not path:
        return None
    try:
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
            step = json.load(f).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _init_from(model_path: Optional[str]) -> Optional[dict]:
    """The conscience run (e.g. a warm-start SFT) whose output is this run's model, or None."""
    from .sft import parent_run

    try:
        return parent_run(model_path)
    except Exception:  # noqa: BLE001 - the link is informative, never fatal
        return None


def _parse_cli(argv: Optional[list[str]]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="python -m conscience.train",
        description="GRPO safety-reasoning trainer. Flags after --config override the recipe's flat TRL keys.",
    )
    p.add_argument("--config", required=True, help="recipe YAML")
    return p.parse_known_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    _install_signal_handlers()
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        level=logging.INFO,
        stream=sys.stderr,
    )
    ns, rest = _parse_cli(argv)

    try:  # the import too: loading TRL and torch takes seconds, and a cancel then must still exit 143
        from .recipe import RecipeError, load_recipe
    except RunCancelled:
        return 128 + signal.SIGTERM
    try:
        recipe = load_recipe(ns.config, rest)
    except RecipeError as e:
        print(f"conscience.train: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunCancelled:
        return 128 + signal.SIGTERM
    from . import trl_compat

    mismatch = trl_compat.line_mismatch(recipe.launch.trl)
    if mismatch:
        logger.warning("%s: %s", ns.config, mismatch)

    training_args = recipe.training_args
    output_dir = training_args.output_dir
    other = run_of_another_kind(output_dir, "grpo")
    if other:  # an SFT run's checkpoints would be resumed as if they were this run's steps
        print(f"conscience.train: {os.path.abspath(output_dir)}: output_dir holds a kind: {other[0]} run (run_id {other[1]}); "
              "a GRPO run does not resume or append to another kind's run: give it its own output_dir (to start from an SFT "
              "run's model, name that folder as model_name_or_path)", file=sys.stderr)
        return EXIT_USAGE
    try:
        resume_from = check_run_folder(output_dir, "grpo", training_args.resume_from_checkpoint, training_args.max_steps)
    except RunFolderError as e:
        print(f"conscience.train: {e}", file=sys.stderr)
        return EXIT_USAGE

    rank = _rank()
    writer = None
    lock = None
    if rank == 0:
        from .events import EventWriter, OutputBusy, lock_output_dir

        # one run writes an output_dir at a time (two would share a run_id, reuse seqs and
        # overwrite each other's checkpoints, both exiting 0): the second is refused
        try:
            lock = lock_output_dir(output_dir)
        except OutputBusy as e:
            print(f"conscience.train: {e}", file=sys.stderr)
            return EXIT_USAGE
        # Always continue an existing stream (same run_id, seq goes on), checkpoint or not:
        # a reader that resumes a run keeps its byte offset into this file.
        writer = EventWriter(output_dir, resume=True)
    from .rewards import logged_name

    reward_logged = [logged_name(n) for n in recipe.script_args.reward_funcs]  # names checked by load_recipe
    # Prompts and budgets before run_started, which records where the budgets came from; a
    # bad prompt set is raised inside the run below, so it still ends in run_finished failed.
    try:
        prepared: Any = _train_rows(recipe)
    except Exception as e:  # noqa: BLE001
        prepared = e
    except RunCancelled as e:  # SIGTERM while the prompts are read and budgeted: still a run that ends cancelled
        prepared = e
    if writer is not None:
        writer.emit(
            "run_started",
            budgets=None if isinstance(prepared, BaseException) else prepared[1],
            recipe_hash=recipe.sha256,
            recipe_path=recipe.path,
            world_size=_world_size(),
            versions=_versions(),
            resumed_from=os.path.abspath(resume_from) if resume_from else None,
            reward_funcs=reward_logged,
            max_steps=training_args.max_steps if training_args.max_steps and training_args.max_steps > 0 else None,
            output_dir=os.path.abspath(output_dir),
            init_from=_init_from(recipe.model_args.model_name_or_path),
        )
        hb = os.environ.get("CONSCIENCE_HEARTBEAT_S")
        writer.start_heartbeat(float(hb) if hb else 30.0)

    status, code, error, summary = "failed", EXIT_FAILED, None, {}
    try:
        if isinstance(prepared, BaseException):  # a bad prompt set fails the run, even one with nothing left to train
            raise prepared
        summary = nothing_left(resume_from, training_args.max_steps) or _train(recipe, writer, resume_from, prepared)
        _shutdown_distributed()
        status, code = "completed", EXIT_OK
    except RunCancelled as e:
        status, code, error = "cancelled", 128 + e.signum, str(e)
        logger.warning("run cancelled: %s", e)
    except Exception as e:  # noqa: BLE001
        if _CANCEL["signum"] is not None:
            # Cancelled while blocked in native code (e.g. a gloo/NCCL collective whose peer
            # already exited): the error is a consequence of the signal, not a failure.
            signum = _CANCEL["signum"]
            status, code, error = "cancelled", 128 + signum, f"received {signal.Signals(signum).name}"
            logger.warning("run cancelled (%s while stopping: %s)", error, e)
        else:
            from .prompt_sets import DataError

            status, code = "failed", EXIT_FAILED
            if isinstance(e, DataError):
                # bad input (a prompt file's FILE:LINE: why, ...), not a crash: one line, no traceback
                error = str(e)
                print(f"conscience.train: {e}", file=sys.stderr)
            else:
                error = f"{type(e).__name__}: {e}"
                traceback.print_exc()
    finally:
        if _CANCEL["signum"] is not None and status != "completed":
            status, code = "cancelled", 128 + _CANCEL["signum"]
            error = f"received {signal.Signals(_CANCEL['signum']).name}"
        if status == "cancelled":
            reason = _stop_reason()
            if reason:  # stopped by the launcher because something it runs beside training failed
                status, error = "failed", reason
        if writer is not None:
            writer.stop_heartbeat()
            writer.emit("run_finished", status=status, exit_code=code, error=error, summary=summary or None)
            writer.close()
        if lock is not None:
            lock.release()
    return code


def _shutdown_distributed() -> None:
    """Waits for every rank, then tears the process group down explicitly.

    Left to interpreter exit, gloo's worker threads are destroyed while still joinable and a
    rank can abort ("terminate called without an active exception") after rank 0 has already
    written run_finished completed, which turns a finished run into exit code 1.
    """
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _train_rows(recipe) -> tuple[list, dict]:
    """The training prompts with their budgets, and where the budgets came from
    (prompt_sets.assign_budgets' info: counts by source and the allocator's status)."""
    from .prompt_sets import assign_budgets, load_prompts

    sa, ta = recipe.script_args, recipe.training_args
    rows = load_prompts(sa.dataset_name, sa.dataset_train_split, sa.dataset_config, sa.dataset_prompt_column)
    if sa.max_train_samples is not None and sa.max_train_samples < len(rows):
        import random

        rng = random.Random(ta.seed)
        rows = rng.sample(rows, sa.max_train_samples)
    rows, info = assign_budgets(rows, recipe.safety, recipe.allocator)
    over = budgets_over_completion(rows, getattr(ta, "max_completion_length", None))
    if over:
        info["over_completion"] = over
        logger.warning(
            "%d of %d training prompts have a safety budget at or above max_completion_length (%d; the largest is %d): "
            "their safety block cannot close with room left for an answer, and the safety_budget reward pushes the "
            "policy to fill the whole completion with it. Raise max_completion_length or set safety.max_budget below it",
            over["count"], len(rows), over["max_completion_length"], over["largest"])
    return rows, info


def budgets_over_completion(rows: list, max_completion_length: Optional[int]) -> Optional[dict]:
    """{count, largest, max_completion_length} of the prompts whose budget is at least
    max_completion_length (run_started.budgets.over_completion), or None when there are none."""
    if not max_completion_length or max_completion_length <= 0:
        return None
    over = [int(r["budget"]) for r in rows if int(r["budget"]) >= max_completion_length]
    if not over:
        return None
    return {"count": len(over), "largest": max(over), "max_completion_length": int(max_completion_length)}


def _train(recipe, writer, resume_from: Optional[str], prepared: Any = None) -> dict:
    import transformers
    from transformers import AutoTokenizer
    from trl import GRPOTrainer, get_peft_config

    from . import trl_compat
    from .prompt_sets import assign_budgets, load_prompts, prompts_over, to_grpo_dataset
    from .recipe import TINY_MODEL_NAME
    from .rewards import build_reward_funcs
    from .tiny_model import ensure_tiny

    sa, ta, ma = recipe.script_args, recipe.training_args, recipe.model_args
    transformers.utils.logging.set_verbosity(ta.get_process_log_level())
    trl_compat.allow_indexed_cpu_map_location()  # a CPU run of several processes resumes (its optimizer state maps to cpu:0)

    # Data and budgets first: a bad prompt set fails before any model is loaded -----------
    if prepared is None:
        prepared = _train_rows(recipe)
    if isinstance(prepared, BaseException):
        raise prepared
    rows, info = prepared
    logger.info(
        "safety budgets: %d from the dataset, %d from the allocator, %d per-label defaults (allocator: %s)",
        info["source"]["dataset"],
        info["source"]["allocator"],
        info["source"]["label"],
        info["allocator"],
    )
    train_ds = to_grpo_dataset(rows, recipe.safety, sa.system_prompt)
    eval_ds = None
    if ta.eval_strategy != "no":
        from .prompt_sets import has_splits

        if not has_splits(sa.dataset_name):  # a single file has no test split: eval would read the training prompts
            raise ValueError(
                f"{sa.dataset_name}: eval_strategy is {ta.eval_strategy!r}, but a single prompt file (or the bundled set) has "
                f"no {sa.dataset_test_split!r} split: evaluation would run on the training prompts. Give a folder with "
                f"{sa.dataset_train_split}.jsonl and {sa.dataset_test_split}.jsonl, or set eval_strategy: 'no'")
        eval_rows = load_prompts(sa.dataset_name, sa.dataset_test_split, sa.dataset_config, sa.dataset_prompt_column)
        eval_rows, _ = assign_budgets(eval_rows, recipe.safety, recipe.allocator)
        eval_ds = to_grpo_dataset(eval_rows, recipe.safety, sa.system_prompt)

    # Model and tokenizer --------------------------------------------------------------
    model_path = ma.model_name_or_path
    if not model_path:
        raise ValueError("model_name_or_path is required")
    if model_path == TINY_MODEL_NAME:
        model_path = ensure_tiny()
        logger.info("tiny model: %s", model_path)
    missing = missing_model_folder(model_path)
    if missing:  # (a local path that is not there went to the hub: an HFValidationError traceback)
        raise ValueError(missing)
    tokenizer = AutoTokenizer.from_pretrained(
        model_path, revision=ma.model_revision, trust_remote_code=trl_compat.trust_remote_code(ma, ta)
    )
    from .template import PromptTemplate

    problem = PromptTemplate.from_recipe(recipe.safety, sa.system_prompt).tokenizer_problem(tokenizer, sa.chat_template, model_path)
    if problem:
        raise ValueError(problem)

    # TRL 0.18 keeps only the last max_prompt_length tokens of a prompt: the system message, which
    # carries the budget instruction, comes first and would be cut while the budget reward still
    # scores against that budget. TRL 1.x has no such cut (the field is gone).
    limit = getattr(ta, "max_prompt_length", None)
    if limit:
        for name, ds in (("train", train_ds), ("eval", eval_ds)):
            if ds is None:
                continue
            count, first = prompts_over(ds, tokenizer, limit)
            if count:
                raise ValueError(
                    f"{sa.dataset_name}: {count} {name} prompt(s) take more than max_prompt_length ({limit}) tokens with "
                    f"the system message and budget instruction (the first: id {first[0]!r}, {first[1]} tokens); TRL "
                    f"0.18 would keep only their last {limit} tokens and cut the budget instruction off the front. "
                    f"Raise max_prompt_length or shorten those prompts")

    ta.model_init_kwargs = trl_compat.model_init_kwargs(ma, ta)  # torch_dtype (TRL 0.18) or dtype (1.x)

    # Rewards ----------------------------------------------------------------------------
    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    funcs = build_reward_funcs(sa.reward_funcs, sa, recipe.safety, ta, count_tokens=count_tokens)
    recorder = SampleRecorder(recipe.safety, count_tokens)
    built: list = []  # the trainer, once built: its model's mode tells training from evaluation (as TRL's own `mode`)

    def training() -> bool:
        return not built or bool(getattr(built[0].model, "training", True))

    funcs = [_recording(f, i, recorder, training) for i, f in enumerate(funcs)]
    callback = _make_callback(writer, recorder, recipe.safety.samples_per_step)
    callbacks = [callback]
    from .requeue import checkpoint_on_request_callback  # SLURM's warning signal: save before the job stops

    callbacks += [c for c in [checkpoint_on_request_callback()] if c is not None]
    if recipe.safety.eval_recipe and recipe.safety.eval_steps > 0:  # evaluation during training (docs/eval.md)
        from .eval import make_training_callback

        callbacks.append(make_training_callback(recipe.safety.eval_recipe, recipe.safety.eval_steps, writer, tokenizer,
                                                recipe.safety, sa.system_prompt, recipe.allocator))

    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=funcs,
        args=ta,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=get_peft_config(ma),
        callbacks=callbacks,
    )
    built.append(trainer)
    if resume_from:
        logger.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model(ta.output_dir)
    return dict(callback.summary)


if __name__ == "__main__":
    sys.exit(main())
