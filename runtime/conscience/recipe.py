"""How a Chain of Conscience recipe YAML is read.

A recipe is one YAML mapping. Three sections are ours and are split off before TRL sees
the file:

* ``launch:``    how the run is started (accelerate config, processes, machines, vLLM server)
                 -> :class:`LaunchConfig`
* ``safety:``    the decoupled safety block and its budgets -> :class:`SafetyConfig`
* ``allocator:`` the budget allocator's settings (``conscience.allocator``'s AllocatorConfig),
                 passed through as a dict, checked at load as the allocator will read them

Every other top-level key is a flat TRL key, parsed by TRL's ``TrlParser`` into
``(ScriptArguments, GRPOConfig, ModelConfig)`` exactly as open-r1 does. Unlike TRL 0.18
(which silently ignores unknown keys), an unknown key is an error naming the file and line.

Paths: ``launch.accelerate_config``, a ``model_name_or_path`` and a ``dataset_name`` that
start with ``./`` or ``../`` (or that exist relative to the recipe's folder) are resolved
against the folder that holds the recipe, so a recipe can be moved with its files.
Two special names are understood: ``model_name_or_path: conscience/tiny`` (the tiny random
model built in-process by :mod:`conscience.tiny_model`) and
``dataset_name: conscience/safety_prompts`` (the prompt set bundled with this package).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from .template import DEFAULTS as TEMPLATE_DEFAULTS
from .template import PLACEHOLDERS, PromptTemplate, unsupported_field

SECTION_NAMES = ("launch", "safety", "allocator")

# A recipe's `kind:` picks the runtime module that runs it (the launcher starts that module,
# through accelerate where the launch: section asks for it). Default: GRPO training.
RECIPE_KINDS = {"grpo": "conscience.train", "sft": "conscience.sft", "eval": "conscience.eval"}
DEFAULT_KIND = "grpo"

TINY_MODEL_NAME = "conscience/tiny"
BUNDLED_DATASET_NAME = "conscience/safety_prompts"


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file (and line where known)."""


# ---------------------------------------------------------------------------------------
# Our sections
# ---------------------------------------------------------------------------------------


@dataclass
class LaunchConfig:
    """The `launch:` section: how `accelerate launch` starts `conscience.train`."""

    accelerate_config: Optional[str] = field(
        default=None,
        metadata={
            "help": "Path to an accelerate config YAML (ddp, zero2, zero3, multi-cpu...), relative to "
            "the recipe's folder. None lets accelerate use its defaults."
        },
    )
    num_processes: int = field(
        default=1,
        metadata={"help": "Training processes in total over all machines (accelerate --num_processes)."},
    )
    num_machines: int = field(
        default=1, metadata={"help": "Machines (nodes) used for training (accelerate --num_machines)."}
    )
    cpu: bool = field(
        default=False,
        metadata={"help": "Train on CPU only (accelerate --cpu); with num_processes > 1 this is gloo DDP."},
    )
    main_process_port: Optional[int] = field(
        default=None,
        metadata={"help": "Rendezvous port of the main process (accelerate --main_process_port); None = 29500."},
    )
    vllm_server: bool = field(
        default=False,
        metadata={
            "help": "Start `trl vllm-serve` for generation (use_vllm with vllm_mode: server). On SLURM the "
            "last node serves; locally it needs its own GPUs."
        },
    )
    vllm_server_gpus: int = field(
        default=1, metadata={"help": "GPUs given to the vLLM server (tensor_parallel_size x data_parallel_size)."}
    )
    vllm_tensor_parallel_size: int = field(
        default=1, metadata={"help": "`trl vllm-serve --tensor_parallel_size`."}
    )
    vllm_data_parallel_size: int = field(
        default=1, metadata={"help": "`trl vllm-serve --data_parallel_size`."}
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.9, metadata={"help": "`trl vllm-serve --gpu_memory_utilization` (0-1)."}
    )
    trl: Optional[str] = field(
        default=None,
        metadata={
            "help": "The TRL version this recipe is written for (e.g. 0.18.2, the open-r1 stack, or 1.16.0, "
            "the current one). The validator checks keys and rules against that version; the trainer "
            "warns when the host runs another TRL line. None: the host's recorded TRL, else 0.18.2."
        },
    )

    def __post_init__(self) -> None:
        if self.trl is not None:
            self.trl = str(self.trl)
        if self.num_processes < 1:
            raise ValueError(f"launch.num_processes must be >= 1, got {self.num_processes}")
        if self.num_machines < 1:
            raise ValueError(f"launch.num_machines must be >= 1, got {self.num_machines}")
        if self.main_process_port is not None and not (1 <= self.main_process_port <= 65535):
            raise ValueError(f"launch.main_process_port must be a port number, got {self.main_process_port}")
        if not (0.0 < self.vllm_gpu_memory_utilization <= 1.0):
            raise ValueError("launch.vllm_gpu_memory_utilization must be in (0, 1]")


@dataclass
class SafetyConfig:
    """The `safety:` section: the decoupled safety-reasoning block and its token budgets."""

    open_tag: str = field(default=TEMPLATE_DEFAULTS["open_tag"], metadata={"help": "Tag that opens the safety block."})
    close_tag: str = field(default=TEMPLATE_DEFAULTS["close_tag"], metadata={"help": "Tag that closes the safety block."})
    budget_source: str = field(
        default="auto",
        metadata={
            "help": "Where a prompt's budget comes from: `auto` (the row's `budget`, else the allocator if "
            "`conscience.allocator` is installed, else the per-label default), `dataset` (row budget, "
            "else per-label default), `allocator` (always the allocator; error if missing), `label` "
            "(always the per-label default).",
            "choices": ["auto", "dataset", "allocator", "label"],
        },
    )
    budget_harmful: int = field(
        default=48, metadata={"help": "Default safety budget (tokens) for prompts labelled harmful."}
    )
    budget_borderline: int = field(
        default=32, metadata={"help": "Default safety budget (tokens) for prompts labelled borderline."}
    )
    budget_benign: int = field(
        default=0, metadata={"help": "Default safety budget (tokens) for prompts labelled benign (0 = empty block)."}
    )
    max_budget: int = field(
        default=1024, metadata={"help": "Budgets (from any source) are clipped to [0, max_budget]."}
    )
    budget_instruction: str = field(
        default=TEMPLATE_DEFAULTS["budget_instruction"],
        metadata={
            "help": "Text appended to the system message telling the model its budget. Placeholders: "
            "{budget}, {open_tag}, {close_tag}, each plain (no format spec or conversion: the serving "
            "gateway fills in only these); {{ and }} are literal braces."
        },
    )
    zero_budget_instruction: str = field(
        default=TEMPLATE_DEFAULTS["zero_budget_instruction"],
        metadata={"help": "Instruction used instead when the budget is 0 (an empty safety block)."},
    )
    budget_mode: str = field(
        default="exact",
        metadata={
            "help": "How `safety_budget` scores the block length n against budget b: `exact` "
            "(1 - |n-b|/max(b, budget_scale)) or `max` (1 if n <= b, else 1 - (n-b)/max(b, budget_scale)).",
            "choices": ["exact", "max"],
        },
    )
    budget_scale: int = field(
        default=16, metadata={"help": "Smallest length scale (tokens) for `safety_budget`, so tiny budgets are not all-or-nothing."}
    )
    samples_per_step: int = field(
        default=4, metadata={"help": "Prompt/completion rows written as a `samples` event per logging step."}
    )
    eval_recipe: Optional[str] = field(
        default=None,
        metadata={
            "help": "An eval recipe (`kind: eval`, relative to this recipe) run on the model being trained every "
            "`eval_steps` steps (rank 0; its prompts and arms, this recipe's template); results are `metrics` "
            "events `eval/<arm>/<label>/<stat>` at that step (docs/eval.md)."
        },
    )
    eval_steps: int = field(default=0, metadata={"help": "Run `eval_recipe` every this many training steps (0 = never)."})

    def __post_init__(self) -> None:
        if not self.open_tag or not self.close_tag:
            raise ValueError("safety.open_tag and safety.close_tag must be non-empty")
        if self.open_tag == self.close_tag:
            raise ValueError("safety.open_tag and safety.close_tag must differ")
        if self.budget_source not in ("auto", "dataset", "allocator", "label"):
            raise ValueError(f"safety.budget_source must be auto, dataset, allocator or label, got {self.budget_source!r}")
        if self.budget_mode not in ("exact", "max"):
            raise ValueError(f"safety.budget_mode must be exact or max, got {self.budget_mode!r}")
        for name in ("budget_harmful", "budget_borderline", "budget_benign", "max_budget", "samples_per_step", "eval_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"safety.{name} must be >= 0")
        if self.budget_scale < 1:
            raise ValueError("safety.budget_scale must be >= 1")
        for name in ("budget_instruction", "zero_budget_instruction"):
            try:  # the wording is formatted for every prompt: a bad placeholder must fail here, with the line
                getattr(self, name).format(budget=1, open_tag=self.open_tag, close_tag=self.close_tag)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:  # {budget[0]}, {open_tag.x}
                raise ValueError(f"safety.{name}: {type(e).__name__}: {e} (placeholders: {{budget}}, {{open_tag}}, "
                                 "{close_tag}; write {{ and }} for braces)") from None
            field = unsupported_field(getattr(self, name))
            if field is not None:  # Python renders it; the gateway's TypeScript template would not
                plain = next((p for p in PLACEHOLDERS if field[1:].startswith(p)), "budget")
                raise ValueError(f"safety.{name}: {field} has a format spec, conversion or index; write the plain "
                                 f"{{{plain}}} (the serving gateway fills in only {{budget}}, {{open_tag}} and "
                                 "{close_tag} as they are, so the policy would be served other text than it trained on)")

    def default_budget(self, label: str) -> int:
        value = {"harmful": self.budget_harmful, "borderline": self.budget_borderline, "benign": self.budget_benign}.get(
            label, self.budget_borderline
        )
        return self.clip_budget(value)

    def clip_budget(self, value: Any) -> int:
        try:
            v = int(round(float(value)))
        except (TypeError, ValueError):
            return 0
        return max(0, min(self.max_budget, v))

    def instruction(self, budget: int) -> str:
        return PromptTemplate.from_recipe(self).instruction(budget)


SECTION_DATACLASSES: dict[str, type] = {"launch": LaunchConfig, "safety": SafetyConfig}


# ---------------------------------------------------------------------------------------
# Flat keys (TRL): our script arguments next to GRPOConfig and ModelConfig
# ---------------------------------------------------------------------------------------

try:  # TRL is a hard dependency of training, but the schema/validation path should import cheaply.
    from trl import ScriptArguments as _TrlScriptArguments
except Exception:  # pragma: no cover - only without TRL installed
    _TrlScriptArguments = object  # type: ignore[misc,assignment]


@dataclass
class ConscienceScriptArguments(_TrlScriptArguments):  # type: ignore[misc,valid-type]
    """Data, prompt and reward arguments (flat keys), next to TRL's GRPOConfig and ModelConfig."""

    dataset_name: Optional[str] = field(
        default=BUNDLED_DATASET_NAME,
        metadata={
            "help": "A local JSONL file or folder (relative to the recipe), `conscience/safety_prompts` "
            "(bundled), or a Hugging Face hub dataset name (only then is the hub contacted)."
        },
    )
    dataset_prompt_column: str = field(
        default="prompt", metadata={"help": "Column holding the user prompt."}
    )
    system_prompt: Optional[str] = field(
        default=None,
        metadata={"help": "System message put before every prompt; the safety budget instruction is appended to it."},
    )
    chat_template: Optional[str] = field(
        default=None, metadata={"help": "Jinja chat template replacing the tokenizer's."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["safety_format", "safety_budget", "refusal"],
        metadata={
            "help": "Reward functions by name: safety_format, safety_budget, refusal, repetition_penalty, "
            "soft_overlong_punishment, answer_length. Weights go in `reward_weights`."
        },
    )
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Use at most this many training prompts (after a seeded shuffle)."}
    )
    # reward parameters
    refusal_reward_value: float = field(
        default=1.0, metadata={"help": "`refusal`: reward for the right behaviour (refuse harmful, comply otherwise)."}
    )
    refusal_penalty_value: float = field(
        default=-1.0, metadata={"help": "`refusal`: reward for the wrong behaviour (comply with harmful, refuse otherwise)."}
    )
    repetition_n_grams: int = field(default=3, metadata={"help": "`repetition_penalty`: n-gram size."})
    repetition_max_penalty: float = field(
        default=-1.0, metadata={"help": "`repetition_penalty`: penalty when every n-gram repeats (must be <= 0)."}
    )
    soft_punish_cache: int = field(
        default=16,
        metadata={"help": "`soft_overlong_punishment`: tokens before max_completion_length where the penalty ramps to -1."},
    )
    answer_min_words: int = field(
        default=3, metadata={"help": "`answer_length`: answers shorter than this many words score below 1."}
    )
    answer_max_words: int = field(
        default=200, metadata={"help": "`answer_length`: answers longer than this many words score below 1."}
    )

    def __post_init__(self) -> None:
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"max_train_samples must be >= 1, got {self.max_train_samples}")
        if self.repetition_max_penalty > 0:
            raise ValueError(f"repetition_max_penalty {self.repetition_max_penalty} should not be positive")
        if self.repetition_n_grams < 1:
            raise ValueError("repetition_n_grams must be >= 1")
        if self.soft_punish_cache < 1:
            raise ValueError("soft_punish_cache must be >= 1")
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [self.reward_funcs]


# Flat keys annotated as lists that take one string as well, and what the string means. Every
# other list key refuses a single value (parse_trl_keys): TrlParser would pass the bare string on,
# and the code reading it iterates over its characters (label_names, lora_modules_to_save) or
# fails mid-run (`reward_weights: 1.0` at GRPOTrainer's len()). The generated schema types these
# keys "array or string" (conscience.schema), so the validator agrees.
LIST_OR_STRING: dict[str, str] = {
    "reward_funcs": "one reward function name is a one-element list (ConscienceScriptArguments.__post_init__)",
    "lora_target_modules": "ModelConfig takes `str | list[str]`: PEFT reads one string as a regex over module "
    "names, or `all-linear`",
    "lora_target_parameters": "ModelConfig takes `str | list[str]` (TRL 1.x), passed to PEFT as is",
}


def recipe_dataclasses() -> list[type]:
    """The dataclasses whose fields are the flat keys of a recipe (TRL's TrlParser order)."""
    from trl import GRPOConfig, ModelConfig

    return [ConscienceScriptArguments, GRPOConfig, ModelConfig]


# ---------------------------------------------------------------------------------------
# Reading a recipe
# ---------------------------------------------------------------------------------------


@dataclass
class Recipe:
    path: str
    sha256: str
    script_args: Any
    training_args: Any
    model_args: Any
    launch: LaunchConfig
    safety: SafetyConfig
    allocator: dict
    raw: dict


def _key_lines(text: str) -> dict[str, int]:
    """Line (1-based) of each top-level key and of `section.key`, for error messages."""
    lines: dict[str, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if not isinstance(node, yaml.MappingNode):
        return lines
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode):
            lines[str(k.value)] = k.start_mark.line + 1
            if isinstance(v, yaml.MappingNode):
                for k2, _ in v.value:
                    if isinstance(k2, yaml.ScalarNode):
                        lines[f"{k.value}.{k2.value}"] = k2.start_mark.line + 1
    return lines


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise RecipeError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise RecipeError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise RecipeError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RecipeError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise RecipeError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def parse_section(name: str, data: Any, file: str = "<recipe>", lines: Optional[dict[str, int]] = None) -> Any:
    """Build the dataclass of section `name` from a mapping, with errors naming file:line."""
    cls = SECTION_DATACLASSES[name]
    lines = lines or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{file}:{lines.get(name, '?')}: `{name}:` must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{file}:{lines.get(f'{name}.{key}', lines.get(name, '?'))}: {name}.{key}"
        if key not in known:
            raise RecipeError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(value, hints[key], where)
    try:
        return cls(**kwargs)
    except ValueError as e:
        # a check that names its key ("safety.budget_mode must be ...") points at that key's line
        msg = str(e)
        key = next((k for k in lines if k.startswith(f"{name}.") and (msg.startswith(f"{k} ") or msg.startswith(f"{k}:"))), None)
        raise RecipeError(f"{file}:{lines[key] if key else lines.get(name, '?')}: {e}") from None


def _resolve_relative(value: Optional[str], base: str) -> Optional[str]:
    if not value or not isinstance(value, str):
        return value
    if os.path.isabs(value):
        return value
    candidate = os.path.normpath(os.path.join(base, value))
    if value.startswith(("./", "../")) or os.path.exists(candidate):
        return candidate
    return value


def read_recipe_yaml(path: str) -> tuple[dict, str, dict[str, int]]:
    """Read a recipe file: (mapping, sha256 of the bytes, key -> line)."""
    from .prompt_sets import DataError, open_regular

    try:  # a FIFO or a device is refused at once (it would block the load forever)
        with open_regular(path, "a recipe is a YAML file", "cannot read recipe") as f:
            data = f.read()
    except DataError as e:
        raise RecipeError(str(e)) from None
    except OSError as e:
        raise RecipeError(f"{path}: cannot read recipe: {e.strerror or e}") from None
    if b"\x00" in data[:8192]:
        raise RecipeError(f"{path}: not a YAML text file (binary content)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(f"{where}: invalid YAML: {problem}") from None
    if raw is None:  # empty, comments only, or `~` (the validator's CC008)
        raise RecipeError(f"{path}:1: the recipe is empty: it sets no keys")
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}:1: a recipe must be a YAML mapping of keys, got {type(raw).__name__}")
    return raw, hashlib.sha256(data).hexdigest(), _key_lines(text)


def read_chat_template(value: str, recipe_path: str, line: Optional[int] = None) -> str:
    """`chat_template` as the recipe gives it: Jinja text, or a file (`*.jinja`, `*.jinja2`, `*.j2`,
    `*.tmpl`, no `{`, one line; relative to the recipe's folder) whose text is read, the rule
    the recipe validator (CC304) checks the file against."""
    import re

    if "{" in value or "\n" in value or not re.search(r"\.(jinja2?|j2|tmpl)$", value, re.IGNORECASE):
        return value
    from .prompt_sets import DataError, open_regular

    path = value if os.path.isabs(value) else os.path.join(os.path.dirname(os.path.abspath(recipe_path)), value)
    where = f"{recipe_path}:{line}" if line else recipe_path
    try:  # a FIFO or a device is refused at once (it would block the load forever)
        with io.TextIOWrapper(open_regular(path, "a chat template is a Jinja text file"), encoding="utf-8") as f:
            return f.read()  # text mode, as open(path, encoding="utf-8") reads it (universal newlines)
    except DataError as e:
        raise ValueError(f"{where}: chat_template file {e}") from None
    except OSError as e:
        raise ValueError(f"{where}: chat_template file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: chat_template file {path}: not UTF-8 text (byte {e.start})") from None


def recipe_kind(raw: dict, path: str = "<recipe>", lines: Optional[dict[str, int]] = None) -> str:
    """The recipe's `kind:` (grpo, sft or eval), with an error naming the file and line."""
    kind = raw.get("kind", DEFAULT_KIND)
    if kind is None:
        kind = DEFAULT_KIND
    if kind not in RECIPE_KINDS:
        line = (lines or {}).get("kind", "?")
        raise RecipeError(f"{path}:{line}: kind must be one of {', '.join(RECIPE_KINDS)}, got {kind!r}")
    return kind


def parse_trl_keys(path: str, flat: dict, lines: dict[str, int], classes: list, cli_args: Optional[list[str]],
                   unknown_keys: Any) -> tuple:
    """A recipe's flat TRL keys parsed into `classes` by TRL's own TrlParser, as open-r1 does,
    for every recipe kind that trains (GRPO, SFT): `model_name_or_path` and `dataset_name`
    resolved against the recipe's folder, `env:` applied to the environment first, `cli_args`
    overriding keys. An unknown key is an error worded by `unknown_keys(where)`."""
    from trl import TrlParser

    base = os.path.dirname(os.path.abspath(path))
    flat = dict(flat)
    for key in ("model_name_or_path", "dataset_name"):
        if key in flat:
            flat[key] = _resolve_relative(flat[key], base)
    env = flat.pop("env", None)
    if env is not None:
        if not isinstance(env, dict):
            raise RecipeError(f"{path}:{lines.get('env', '?')}: `env` must be a mapping of variable: value")
        for k, v in env.items():
            os.environ[str(k)] = str(v)
    parser = TrlParser(classes)
    try:
        unknown = parser.set_defaults_with_config(**flat)
    except Exception as e:  # noqa: BLE001 - argparse default errors
        raise RecipeError(f"{path}: {e}") from None
    if unknown:
        keys = [s[2:] for s in unknown if isinstance(s, str) and s.startswith("--")]
        where = ", ".join(f"{k} (line {lines.get(k, '?')})" for k in keys) or " ".join(map(str, unknown))
        raise RecipeError(unknown_keys(where))
    check_flat_values(path, flat, lines, classes)
    try:
        return tuple(parser.parse_args_into_dataclasses(args=list(cli_args or [])))
    except SystemExit as e:
        raise RecipeError(f"{path}: invalid arguments (argparse exit {e.code})") from None
    except (ValueError, TypeError, ArithmeticError) as e:  # ArithmeticError: int(.inf) in a TRL check
        # a dataclass check names its key first ("max_train_samples must be ..."), else somewhere
        # ("--dataloader_prefetch_factor can only be set ...", "At least one of `x` or `y` ..."): the
        # line of the first key the message names that the recipe sets
        key = next((k for k in lines if str(e).startswith(f"{k} ")), None) or _first_named_key(str(e), flat, lines)
        if key is None and isinstance(e, ArithmeticError):  # int(.inf) inside TRL: name the key that holds it
            bad = next((k for k, v in flat.items() if isinstance(v, float) and not math.isfinite(v)), None)
            if bad is not None:
                raise RecipeError(f"{path}:{lines.get(bad, '?')}: {bad}: {flat[bad]} is not a finite number ({e})") from None
        raise RecipeError(f"{path}:{lines[key]}: {e}" if key else f"{path}: {e}") from None


def _first_named_key(msg: str, flat: dict, lines: dict[str, int]) -> Optional[str]:
    """The flat key set in the recipe that `msg` names first (as `key`, --key or the bare word)."""
    import re

    best: Optional[tuple[int, str]] = None
    for k in flat:
        if k not in lines:
            continue
        m = re.search(rf"(?<![\w.]){re.escape(str(k))}(?![\w])", msg)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), k)
    if best is None:  # an enum's "greedy is not a valid SchedulerType": the key holding that value
        m = re.match(r"'?([^'\s]+)'? is not a valid ", msg)
        return next((k for k, v in flat.items() if m and k in lines and isinstance(v, str) and v == m.group(1)), None)
    return best[1]


def _list_annotation(tp: Any) -> bool:
    """True for `list[X]` / `Optional[list[X]]` without `str` in the union (one string is not a value)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp) if origin is typing.Union or type(tp).__name__ == "UnionType" else (tp,)
    return any(a is list or typing.get_origin(a) is list for a in args) and str not in args


def _nullable(tp: Any) -> bool:
    """True for an annotation that admits None (`Optional[X]`, `X | None`)."""
    origin = typing.get_origin(tp)
    return (origin is typing.Union or type(tp).__name__ == "UnionType") and type(None) in typing.get_args(tp)


def _int_annotation(tp: Any) -> bool:
    """True for `int` / `Optional[int]` (not bool, not a union with float or str)."""
    origin = typing.get_origin(tp)
    args = [a for a in (typing.get_args(tp) if origin is typing.Union or type(tp).__name__ == "UnionType" else (tp,)) if a is not type(None)]
    return args == [int]


def _non_finite(value: Any) -> bool:
    """A YAML float that is NaN or infinite, or a string argparse's float() turns into one."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        try:
            return not math.isfinite(float(value))
        except ValueError:
            return False
    return False


def check_flat_values(path: str, flat: dict, lines: dict[str, int], classes: list) -> None:
    """What TrlParser passes on unchecked, refused with the key's line, as the validator reports it:
    a single value for a list key (CC101), null for a list key that does not take None (CC101:
    `include_for_metrics: null` fails the Trainer's `"inputs" in args.include_for_metrics` at the
    first evaluation, `reward_funcs: null` the trainer's setup), a number or a boolean for a key
    that takes a list or one string (CC101: PEFT fails on `target_modules=5` when the model is
    wrapped) and NaN / infinity for a key with a numeric bound (CC103; `max_grad_norm: .inf`, no
    clipping, is the one infinite value allowed)."""
    from .schema import RANGES, bound_words

    hints: dict[str, Any] = {}
    for cls in classes:
        for name, tp in typing.get_type_hints(cls).items():
            hints.setdefault(name, tp)
    for key, value in flat.items():
        where = f"{path}:{lines.get(key, '?')}: {key}"
        hint = hints.get(key)
        if value is None and _list_annotation(hint) and not _nullable(hint):
            kinds = "a list or a string" if key in LIST_OR_STRING else "a list"
            raise RecipeError(f"{where} expects {kinds}, got null; leave the key out for its default")
        if key in LIST_OR_STRING and isinstance(value, (bool, int, float)):
            kinds = "a list, a string or null" if _nullable(hint) else "a list or a string"
            text = str(value).lower() if isinstance(value, bool) else str(value)
            shown = f"{text} (a boolean in YAML)" if isinstance(value, bool) else f"the number {text}"
            raise RecipeError(f"{where} expects {kinds}, got {shown}; quote it if it is meant as text: '{text}'")
        if value is not None and not isinstance(value, list) and key not in LIST_OR_STRING and _list_annotation(hint):
            shown = "a mapping" if isinstance(value, dict) else repr(value)
            raise RecipeError(f"{where} expects a list, got {shown}; write it as a list: {key}: [{value if not isinstance(value, dict) else '...'}]")
        bound = bound_words(key)
        if bound and _non_finite(value) and not (RANGES[key].get("x-allow-infinity") and float(value) == math.inf):
            raise RecipeError(f"{where} = {value} is not a finite number: it must be {bound}")
        if isinstance(value, float) and not math.isfinite(value) and _int_annotation(hint):
            # argparse's int() fails deep inside the Trainer, or a loop never ends (max_steps); CC101
            raise RecipeError(f"{where} expects an integer, got {value}")


def allocator_section(raw: dict, path: str, lines: dict[str, int]) -> dict:
    """The recipe's `allocator:` mapping ({} when absent), checked as the allocator will read it:
    an unknown key or a bad value is an error now, not a silent fall back to per-label budgets
    in the middle of a run (the validator reports the same keys)."""
    allocator = raw.get("allocator")
    allocator = {} if allocator is None else allocator
    if not isinstance(allocator, dict):
        raise RecipeError(f"{path}:{lines.get('allocator', '?')}: `allocator:` must be a mapping")
    check_allocator(allocator, f"{path}:{lines.get('allocator', '?')}")
    return allocator


def check_allocator(allocator: dict, where: str) -> None:
    """The settings read as the allocator will read them (AllocatorConfig): RecipeError at
    ``where`` (FILE:LINE) for an unknown key or a bad value."""
    from .allocator.policy import AllocatorConfig

    try:
        AllocatorConfig.from_mapping(allocator)
    except ValueError as e:
        raise RecipeError(f"{where}: allocator: {e}") from None


def refuse_quantized(path: str, lines: dict[str, int], model_args: Any) -> None:
    """load_in_4bit / load_in_8bit (ModelConfig) are refused, not ignored: the trainers would load
    the full-precision model (the recipe validator's CC226 says the same)."""
    for key in ("load_in_4bit", "load_in_8bit"):
        if getattr(model_args, key, False):
            raise RecipeError(f"{path}:{lines.get(key, '?')}: {key}: a quantized policy is not supported by this runtime "
                              "(it would need bitsandbytes and a GPU path it does not test); train LoRA adapters "
                              "(use_peft: true) on a bf16 model instead")


def check_grpo_keys(path: str, lines: dict[str, int], script_args: Any, training_args: Any) -> None:
    """What the GRPO trainer would take and then train wrongly, or fail on mid-run, refused at
    load with the key's line, as the recipe validator reports it: an empty `reward_funcs` (CC300:
    a run that trains on nothing and "completes"), a name the reward registry does not know
    (CC301), `reward_weights` of another length (CC207: TRL fails when the trainer is built),
    `remove_unused_columns: true` (CC232: the budget and label columns are dropped, so the
    safety_budget and refusal rewards score 0.0 for every completion) and a `soft_punish_cache`
    that is not below `max_completion_length` (CC233: every completion is penalised)."""
    from .rewards import REWARD_FUNCS

    names = script_args.reward_funcs
    known = ", ".join(REWARD_FUNCS)
    at = f"{path}:{lines.get('reward_funcs', '?')}"
    if not names:
        raise RecipeError(f"{at}: reward_funcs is empty: GRPO needs at least one reward function (a run without one "
                          f"trains on nothing). Add some of: {known}")
    for name in names:
        if not isinstance(name, str) or name not in REWARD_FUNCS:
            raise RecipeError(f"{at}: Unknown reward function '{name}': the runtime knows {known}.")
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(names):
        raise RecipeError(f"{path}:{lines.get('reward_weights', '?')}: Number of reward weights ({len(weights)}) must match "
                          f"number of reward functions ({len(names)}) (GRPOTrainer). Give one weight per entry of "
                          "reward_funcs, in the same order.")
    if training_args.remove_unused_columns:
        raise RecipeError(f"{path}:{lines.get('remove_unused_columns', '?')}: remove_unused_columns: true drops every dataset "
                          "column but the prompt before the reward functions see them (TRL keeps only the columns its "
                          "model inputs name), so the per-prompt `budget` and `safety_label` are gone: safety_budget and "
                          "refusal would score 0.0 for every completion. Remove the key or set it to false (GRPOConfig's "
                          "default).")
    cache = script_args.soft_punish_cache
    max_len = training_args.max_completion_length or 256  # the reward's own fallback (build_reward_funcs)
    if "soft_overlong_punishment" in names and cache >= max_len:
        said = (f"max_completion_length ({max_len}, line {lines['max_completion_length']})" if "max_completion_length" in lines
                else f"max_completion_length ({max_len}, the default)")
        line = lines.get("soft_punish_cache") or lines.get("max_completion_length") or lines.get("reward_funcs", "?")
        raise RecipeError(f"{path}:{line}: soft_punish_cache ({cache}) must be less than {said}: "
                          "soft_overlong_punishment penalises completions longer than max_completion_length - "
                          "soft_punish_cache tokens, so it would penalise every completion. Lower soft_punish_cache.")


def load_recipe(path: str, cli_args: Optional[list[str]] = None) -> Recipe:
    """Read `path` and parse it; `cli_args` (e.g. ["--output_dir", "x"]) override flat keys."""
    raw, digest, lines = read_recipe_yaml(path)
    kind = recipe_kind(raw, path, lines)
    if kind != "grpo":
        raise RecipeError(f"{path}:{lines.get('kind', '?')}: this is a `kind: {kind}` recipe; run it with python -m {RECIPE_KINDS[kind]}")
    base = os.path.dirname(os.path.abspath(path))
    flat = {k: v for k, v in raw.items() if k not in SECTION_NAMES and k != "kind"}
    launch = parse_section("launch", raw.get("launch"), path, lines)
    safety = parse_section("safety", raw.get("safety"), path, lines)
    allocator = allocator_section(raw, path, lines)
    if launch.accelerate_config:
        launch.accelerate_config = os.path.normpath(os.path.join(base, launch.accelerate_config))
    if safety.eval_recipe:
        safety.eval_recipe = os.path.normpath(os.path.join(base, safety.eval_recipe))

    def unknown_keys(where: str) -> str:
        from .trl_compat import line_mismatch

        said = (raw.get("launch") or {}).get("trl") if isinstance(raw.get("launch"), dict) else None
        hint = line_mismatch(str(said) if said is not None else None, _trl_version())
        return f"{path}: unknown keys for TRL {_trl_version()}: {where}" + (f" ({hint})" if hint else "")

    script_args, training_args, model_args = parse_trl_keys(path, flat, lines, recipe_dataclasses(), cli_args, unknown_keys)
    refuse_quantized(path, lines, model_args)
    check_grpo_keys(path, lines, script_args, training_args)
    if script_args.chat_template:  # a file's text, read now: a missing file is an error with its line (as SFT and eval)
        try:
            script_args.chat_template = read_chat_template(script_args.chat_template, path, lines.get("chat_template"))
        except ValueError as e:
            raise RecipeError(str(e)) from None
    return Recipe(
        path=os.path.abspath(path),
        sha256=digest,
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
        launch=launch,
        safety=safety,
        allocator=allocator,
        raw=raw,
    )


def _trl_version() -> str:
    try:
        import trl

        return trl.__version__
    except Exception:  # pragma: no cover
        return "?"
