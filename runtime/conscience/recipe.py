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
import datetime
import hashlib
import io
import json
import math
import os
import re
import string
import typing
import warnings
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
        for inner, outer in (("open_tag", "close_tag"), ("close_tag", "open_tag")):
            if getattr(self, inner) in getattr(self, outer):  # the parser would find one tag inside the other
                raise ValueError(f"safety.{outer} {getattr(self, outer)!r} contains safety.{inner} {getattr(self, inner)!r}: a "
                                 "completion's block could not be told apart from its tags (safety_format would score "
                                 "every well-formed completion 0.5); choose tags that do not contain each other")
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
            if name == "budget_instruction" and not any(
                    f == "budget" for _, f, _, _ in string.Formatter().parse(self.budget_instruction)):
                raise ValueError("safety.budget_instruction has no {budget}: the policy would never be told its budget, "
                                 "which the budget reward scores its block against; write {budget} where the token count goes")
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


class KeyLines(dict):
    """Line (1-based) of each top-level key, of `section.key` / `key.sub` (nested mappings, a
    merged `<<:` key at the line that gives its value) and of `key[i]` (list items), for error
    messages. `scalars` holds each such path's scalar as written: (source text, plain, tag)."""

    def __init__(self) -> None:
        super().__init__()
        self.scalars: dict[str, tuple[str, bool, str]] = {}


class _RecipeLoader(yaml.SafeLoader):
    """yaml.SafeLoader whose core-tag constructors fail as YAML errors at the value's line:
    PyYAML's own raise a bare ValueError (`!!int abc`), KeyError (`!!bool maybe`) or
    AttributeError (`!!timestamp x`), which left the recipe's reader with a traceback.
    Merge keys (`<<`) are applied in the YAML merge spec's order whatever the PyYAML version."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._flattening: set[int] = set()  # the mappings whose merges are being applied (one merged into itself)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Merge keys as the YAML merge spec (and docs/recipes.md, the validator's merge() and
        _key_lines) order them: the keys the mapping sets itself win, then earlier sources over
        later ones (`<<: [*a, *b]`, or `<<: *a` then `<<: *b`). PyYAML 6.0.4 changed its own
        flatten_mapping so that, for most key names, the *later* source won. A key a source gives
        is taken once (the first time), so merges of merges stay as small as their keys."""
        own: list = []
        sources: list = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                if isinstance(value_node, yaml.MappingNode):
                    subnodes = [value_node]
                elif isinstance(value_node, yaml.SequenceNode):
                    subnodes = value_node.value
                    for sub in subnodes:
                        if not isinstance(sub, yaml.MappingNode):
                            raise yaml.constructor.ConstructorError(
                                "while constructing a mapping", node.start_mark,
                                f"expected a mapping for merging, but found {sub.id}", sub.start_mark)
                else:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"expected a mapping or list of mappings for merging, but found {value_node.id}", value_node.start_mark)
                for sub in subnodes:
                    if sub is node or id(sub) in self._flattening:  # `&a {<<: *a}`: PyYAML recursed until RecursionError
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            "a mapping merged into itself (an alias inside its own anchor): a value that contains itself, "
                            "which nothing in a recipe can use. Write the value out.", sub.start_mark)
                    self._flattening.add(id(node))
                    try:
                        self.flatten_mapping(sub)
                    finally:
                        self._flattening.discard(id(node))
                    sources.append(sub)
                continue
            if key_node.tag == "tag:yaml.org,2002:value":  # `=` as a key is the text "=", as in PyYAML
                key_node.tag = "tag:yaml.org,2002:str"
            own.append((key_node, value_node))
        if not sources:
            return

        def ident(k: yaml.Node) -> Any:
            return (k.tag, k.value) if isinstance(k, yaml.ScalarNode) else id(k)

        seen = {ident(k) for k, _ in own}
        merged = []
        for sub in sources:
            for k, v in sub.value:
                if ident(k) not in seen:
                    seen.add(ident(k))
                    merged.append((k, v))
        node.value = merged + own


def _construct_at_line(construct: Any) -> Any:
    def checked(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
            kind = str(node.tag).rsplit(":", 1)[-1]
            words = 'an integer' if kind == 'int' else 'a boolean' if kind == 'bool' else 'a ' + kind
            mark = node.start_mark
            written = mark.buffer[mark.pointer:mark.pointer + 256] if mark is not None and isinstance(mark.buffer, str) else ""
            if re.match(r"(?:&\S+\s+)?!", written):  # an explicit tag: `!!int abc`
                problem = f"!!{kind} cannot read {node.value!r} as {words}"
            else:  # PyYAML's resolver took a plain value for one that its constructor cannot read: `0b_`, `2024-13-01`
                problem = f"cannot read '{node.value}' as {words} (YAML 1.1 takes it for one); quote it to keep the text: '{node.value}'"
            raise yaml.constructor.ConstructorError(None, None, problem, mark) from None
    return checked


for _kind in ("int", "float", "bool", "timestamp"):
    _RecipeLoader.add_constructor(f"tag:yaml.org,2002:{_kind}", _construct_at_line(getattr(yaml.SafeLoader, f"construct_yaml_{_kind}")))


# A YAML 1.2 (and JSON) number; PyYAML's YAML 1.1 resolver reads some as text: `1e-6`, `1.0e8`, `-.5`
_YAML12_NUMBER = r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
MAX_DEPTH = 64  # the validator's YAML parser refuses deeper nesting (CC001); PyYAML's composer recurses
MAX_PATHS = 100_000  # lines recorded at most (an alias repeats its node's paths under every reference)


def _key_lines(node: Any, path: str = "<recipe>") -> KeyLines:
    """The lines of a composed recipe (see KeyLines); a key given twice in one mapping is a
    RecipeError at its second occurrence (PyYAML keeps the last value silently; the validator's CC003)."""
    lines = KeyLines()

    def scalar(p: str, n: Any) -> None:
        if isinstance(n, yaml.ScalarNode):
            lines.scalars[p] = (str(n.value), n.style is None, n.tag.rsplit(":", 1)[-1])

    memo: dict[int, list] = {}

    def items(n: Any) -> list:
        """(key node, value node) of a mapping, explicit keys first, then merged ones (which they override)."""
        if id(n) in memo:
            return memo[id(n)]
        memo[id(n)] = []  # a mapping merged into itself
        own, merged = [], []
        seen: dict[Any, int] = {}
        for k, v in n.value:
            if isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge":
                sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
                for s in sources:
                    if isinstance(s, yaml.MappingNode):
                        merged += items(s)
                continue
            if isinstance(k, yaml.ScalarNode):
                ident = (k.tag, k.value)
                if ident in seen:
                    raise RecipeError(f"{path}:{k.start_mark.line + 1}: Duplicate key '{k.value}' (first defined on line "
                                      f"{seen[ident]}). PyYAML silently keeps the last value; remove one of them.")
                seen[ident] = k.start_mark.line + 1
            own.append((k, v))
        keys = {(k.tag, k.value) for k, _ in own if isinstance(k, yaml.ScalarNode)}
        for k, v in merged:  # the first source that gives a key wins, as PyYAML merges
            if isinstance(k, yaml.ScalarNode) and (k.tag, k.value) not in keys:
                keys.add((k.tag, k.value))
                own.append((k, v))
        memo[id(n)] = own
        return own

    inside: set[int] = set()  # the collections around the node walked: one of them again is a value that contains itself

    def itself(p: str, line: Any) -> RecipeError:
        return RecipeError(f"{path}:{line}: {p} is an alias of a collection it is inside: a value that contains itself, "
                           "which nothing in a recipe can use (transformers fails on it). Write the value out.")

    def walk(n: Any, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH or len(lines) > MAX_PATHS:  # aliases repeat a node: a billion laughs stays small
            return
        inside.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for k, v in items(n):
                if not isinstance(k, yaml.ScalarNode):
                    continue
                p = f"{prefix}.{k.value}" if prefix else str(k.value)
                if id(v) in inside:
                    raise itself(p, k.start_mark.line + 1)
                if p not in lines:  # an explicit key wins over a merged one
                    lines[p] = k.start_mark.line + 1
                    scalar(p, v)
                    walk(v, p, depth + 1)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                p = f"{prefix}[{i}]"
                if id(v) in inside:  # an alias has no line of its own: the list's
                    raise itself(p, lines.get(prefix, n.start_mark.line + 1))
                lines[p] = v.start_mark.line + 1
                scalar(p, v)
                walk(v, p, depth + 1)
        inside.discard(id(n))

    if isinstance(node, yaml.MappingNode):
        walk(node, "", 0)
    return lines


_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")
_LINE_BREAK_NAMES = {"\x85": "NEXT LINE", "\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR"}


def _check_line_breaks(text: str, path: str) -> None:
    """NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR end a line to PyYAML but not to the editor or
    the validator: after one in a comment the rest of the line was live YAML (`# was: <LS>beta: 0.9`
    set beta), and lines were counted apart. Outside a quoted scalar (where both read it as a
    character) it is refused at its line as the editor counts lines (the validator's CC001)."""
    if not _LINE_BREAKS.search(text):
        return
    import bisect

    starts: list[int] = []
    ends: list[int] = []
    stop = len(text)
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken) and token.style in ("'", '"'):
                starts.append(token.start_mark.index)
                ends.append(token.end_mark.index)
    except yaml.reader.ReaderError:  # a control character: PyYAML's Reader refuses it before anything is read
        return
    except yaml.YAMLError as e:  # a terminator after the error is not what the error is about
        mark = getattr(e, "problem_mark", None)
        stop = mark.index + 1 if mark is not None else stop
    for m in _LINE_BREAKS.finditer(text, 0, stop):
        i = bisect.bisect_right(starts, m.start()) - 1
        if i >= 0 and m.start() < ends[i]:
            continue
        line = len(re.findall(r"\r\n|\r|\n", text[:m.start()])) + 1
        raise RecipeError(f"{path}:{line}: invalid YAML: unusual line terminator U+{ord(m.group()):04X} "
                          f"({_LINE_BREAK_NAMES[m.group()]}): PyYAML reads it as a new line, so what follows it is not "
                          "where the editor shows it. Remove it, or put a real line break there.")


def _check_depth(text: str, path: str) -> None:
    """Nesting deeper than MAX_DEPTH is refused from the parser's events (which do not recurse),
    before PyYAML's recursive composer hits Python's recursion limit."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise RecipeError(f"{path}:{event.start_mark.line + 1}: invalid YAML: nested more than {MAX_DEPTH} "
                                  "levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


_INT_TEXT = re.compile(r"-?[0-9]+")


def _coerce(value: Any, tp: Any, where: str, text: Optional[str] = None) -> Any:
    """`value` as a section field of type `tp`; `text`: the scalar as written, for messages."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where, text)
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
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):  # not "--2", "²" or "1_000" (int() takes some)
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
        if isinstance(value, (datetime.date, bytes)):  # str() made `open_tag: !!binary ...` the text "b'...'"
            said = f". Quote it to keep the text: '{text}'." if text and isinstance(value, datetime.date) else "."
            raise RecipeError(f"{where} expects a string, got {_not_text(value, text)}{said}")
        if isinstance(value, bool):  # `open_tag: yes` became "True"; CC101
            said = f" (YAML 1.1 reads `{text}` as a boolean). Quote it to keep the text: '{text}'." if text else " (a boolean in YAML)."
            raise RecipeError(f"{where} expects a string, got {str(value).lower()}{said}")
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
        scalar = getattr(lines, "scalars", {}).get(f"{name}.{key}")
        kwargs[key] = _coerce(value, hints[key], where, scalar[0] if scalar and scalar[1] else None)
        problem = _out_of_range(f"{name}.{key}", kwargs[key])
        if problem:  # the schema's bound (CC103), from the table the validator reads
            raise RecipeError(f"{where.rsplit(': ', 1)[0]}: {problem}")
    try:
        return cls(**kwargs)
    except ValueError as e:
        # a check that names its key ("safety.budget_mode must be ...") points at that key's line
        msg = str(e)
        key = next((k for k in lines if k.startswith(f"{name}.") and (msg.startswith(f"{k} ") or msg.startswith(f"{k}:"))), None)
        if key is None:  # it opens with a key the recipe leaves at its default: the first it names that the recipe sets
            named = [(msg.find(k), k) for k in lines if k.startswith(f"{name}.") and re.search(rf"(?<![\w.]){re.escape(k)}\b", msg)]
            key = min(named)[1] if named else None
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


def _key_as_written(node: Any, key: Any) -> tuple[int, str]:
    """The line and the text of the top-level key that YAML read as `key` (`on` for True, `0x10` for 16)."""
    for k, _ in node.value if isinstance(node, yaml.MappingNode) else ():
        if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:str":
            try:
                value = _RecipeLoader("").construct_object(k)
            except yaml.YAMLError:
                continue
            if type(value) is type(key) and value == key:
                return k.start_mark.line + 1, str(k.value)
    return 1, str(key)


def read_recipe_yaml(path: str) -> tuple[dict, str, KeyLines]:
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
        _check_line_breaks(text, path)
        _check_depth(text, path)
        loader = _RecipeLoader(text)
        try:  # composed once: the lines and duplicate keys from the nodes, the values as yaml.safe_load reads them
            node = loader.get_single_node()
            lines = _key_lines(node, path)
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as e:  # no mark, only a position: the line as the editor counts it
        line = len(re.findall(r"\r\n|\r|\n", text[:e.position])) + 1
        raise RecipeError(f"{path}:{line}: invalid YAML: non-printable character U+{e.character:04X}: PyYAML refuses special "
                          "characters anywhere in a recipe, comments included. Remove it.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e)
        context, at = getattr(e, "context", None), getattr(e, "context_mark", None)
        if isinstance(e, yaml.composer.ComposerError) and context and at is not None and context.startswith("found duplicate anchor"):
            # "found duplicate anchor 'n'; first occurrence" + "second occurrence": both halves, with the first's line
            problem = f"{context.split(';')[0]} (first on line {at.line + 1}); PyYAML refuses an anchor defined twice"
        raise RecipeError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:  # a structure _check_depth let through, built recursively
        raise RecipeError(f"{path}:1: invalid YAML: nested too deeply") from None
    if raw is None:  # empty, comments only, or `~` (the validator's CC008)
        raise RecipeError(f"{path}:1: the recipe is empty: it sets no keys")
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}:1: a recipe must be a YAML mapping of keys, got {type(raw).__name__}")
    if not all(isinstance(k, str) for k in raw):  # `1: x`, `true: x`, `null: x`: TrlParser failed on **flat
        key = next(k for k in raw if not isinstance(k, str))
        line, written = _key_as_written(node, key)
        raise RecipeError(f"{path}:{line}: Unknown key '{written}': a recipe's keys are names of settings, and YAML reads this one "
                          f"as {'null' if key is None else type(key).__name__} (TrlParser failed on it: keywords must be strings)")
    return raw, hashlib.sha256(data).hexdigest(), lines


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


def _base64_json(value: str) -> bool:
    """TrainingArguments also takes `deepspeed:` as base64-encoded JSON."""
    import base64
    import binascii
    import json

    try:
        return isinstance(json.loads(base64.b64decode(value, validate=True).decode("utf-8")), dict)
    except (binascii.Error, ValueError):
        return False


def read_deepspeed_config(value: str, recipe_path: str, line: Optional[int] = None) -> str:
    """`deepspeed:` as a path, resolved against the recipe's folder, then the working folder, and read
    now as TrainingArguments will read it (json.load): a missing or malformed file is a RecipeError
    at the recipe's line that names the file (the validator's CC306). Returns the absolute path."""
    import json

    where = f"{recipe_path}:{line}" if line else recipe_path
    if not value.strip() or value.lstrip().startswith("{") or (not value.endswith(".json") and _base64_json(value)):
        return value
    here = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(recipe_path)), os.path.expanduser(value)))
    cwd = os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(value)))
    # transformers opens a relative path from the working folder (runs start at the repository root)
    file = here if os.path.exists(here) or not os.path.exists(cwd) else cwd
    if not os.path.exists(file):
        tried = here if cwd == here else f"{here} (the recipe's folder) and {cwd} (the working folder)"
        raise RecipeError(f"{where}: DeepSpeed config '{value}' not found (looked for {tried}). "
                          "Fix the path or create the file.")
    from .prompt_sets import DataError, open_regular, too_deep

    try:
        with io.TextIOWrapper(open_regular(file, "a DeepSpeed config is a JSON file"), encoding="utf-8") as f:
            text = f.read()
        if too_deep(text):
            raise RecipeError(f"{where}: DeepSpeed config '{value}' ({file}) nests too deeply to be a DeepSpeed config")
        config = json.loads(text)
        if not isinstance(config, dict):
            raise RecipeError(f"{where}: DeepSpeed config '{value}' ({file}) must be a JSON object "
                              '({"zero_optimization": {...}, ...}).')
    except json.JSONDecodeError as e:
        raise RecipeError(f"{where}: DeepSpeed config '{value}' ({file}) is not valid JSON at line {e.lineno}, column {e.colno}: "
                          f"{e.msg}. transformers reads it with json.load, which refuses trailing commas and comments.") from None
    except DataError as e:
        raise RecipeError(f"{where}: DeepSpeed config {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{where}: DeepSpeed config '{value}' ({file}): {getattr(e, 'strerror', None) or e}") from None
    return file


def check_accelerate_config(value: str, recipe_path: str, line: Any = None) -> str:
    """`launch.accelerate_config` resolved against the recipe's folder and read now as accelerate
    will read it (YAML, or json.load for `.json`): a missing, unreadable or malformed file is a
    RecipeError at the recipe's line that names the file (the validator's CC302 / CC400), not a
    failure of `accelerate launch` after the launcher has started. Returns the absolute path."""
    import json

    where = f"{recipe_path}:{line if line is not None else '?'}: launch.accelerate_config"
    full = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(recipe_path)), value))
    if not os.path.exists(full):
        raise RecipeError(f"{where}: Accelerate config '{value}' not found (resolved against the recipe's folder: {full}). "
                          "Use e.g. ../accelerate/zero2.yaml or fix the path.")
    if os.path.isdir(full):
        raise RecipeError(f"{where}: Accelerate config '{value}' is a folder ({full}), not a file. Name the config file in it, "
                          f"e.g. {value.rstrip('/')}/zero2.yaml.")
    from .prompt_sets import DataError, open_regular

    try:
        with open_regular(full, "an accelerate config is a YAML or JSON file") as f:
            data = f.read()
        text = data.decode("utf-8")
    except DataError as e:
        raise RecipeError(f"{where}: Accelerate config {e}") from None
    except OSError as e:
        raise RecipeError(f"{where}: Accelerate config '{value}' ({full}) cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"{where}: Accelerate config '{value}' ({full}) cannot be read: it is not valid UTF-8 text "
                          f"(byte {e.start}).") from None
    cannot = f"{where}: Accelerate config '{value}' ({full}) cannot be read"
    if full.lower().endswith(".json"):
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecipeError(f"{cannot}: it is not valid JSON (accelerate reads a .json config with json.load) at line "
                              f"{e.lineno}, column {e.colno}: {e.msg}.") from None
        except RecursionError:
            raise RecipeError(f"{cannot}: it nests too deeply") from None
    else:
        try:
            _check_depth(text, full)
            config = yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise RecipeError(f"{cannot}: it is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
        except RecipeError as e:
            raise RecipeError(f"{cannot}: {str(e).split(': ', 2)[-1]}") from None
    if not isinstance(config, dict):
        raise RecipeError(f"{cannot}: the accelerate config is empty or not a mapping.")
    if "distributed_type" not in config and any(k in config for k in _RECIPE_ONLY_KEYS):
        raise RecipeError(f"{cannot}: it is a recipe (it has recipe keys such as model_name_or_path or reward_funcs), not an "
                          "accelerate config. Point launch.accelerate_config at an accelerate config (e.g. ../accelerate/zero2.yaml).")
    return full


# Keys only a recipe has: an accelerate config without distributed_type that has one is a recipe
_RECIPE_ONLY_KEYS = ("reward_funcs", "model_name_or_path", "num_generations", "per_device_train_batch_size", "launch", "kind")


def check_eval_recipe(value: str, recipe_path: str, line: Any, safety: Any, system_prompt: Any, allocator: dict,
                      given: Optional[str] = None) -> None:
    """`safety.eval_recipe`, loaded now as the trainer's evaluation callback will load it (with this
    recipe's template): a missing file or a bad eval recipe is a RecipeError at this recipe's line
    (the validator's CC307), not a failure at trainer setup after the data and the model are loaded."""
    from .eval import EvalError, load_eval_recipe

    where = f"{recipe_path}:{line if line is not None else '?'}: safety.eval_recipe"
    given = given or value
    if not os.path.exists(value):
        raise RecipeError(f"{where}: Eval recipe '{given}' not found (resolved against the recipe's folder: {value}). "
                          "Fix the path or create the file.")
    if os.path.isdir(value):
        raise RecipeError(f"{where}: Eval recipe '{given}' is a folder ({value}), not a file. Name the file in it.")
    try:
        load_eval_recipe(value, policy=(safety, system_prompt, allocator))
    except (EvalError, RecipeError) as e:
        raise RecipeError(f"{where}: {e}") from None


def _zero_stage(config: Any) -> Optional[int]:
    """A DeepSpeed JSON config's ZeRO stage (a dict, a path or JSON text), None if it has none or cannot be read."""
    if isinstance(config, str):
        try:
            if config.lstrip().startswith("{"):
                config = json.loads(config)
            elif not config.endswith(".json") and _base64_json(config):  # TrainingArguments takes base64 JSON too
                import base64

                config = json.loads(base64.b64decode(config, validate=True).decode("utf-8"))
            else:
                with open(config, encoding="utf-8") as f:
                    config = json.load(f)
        except (OSError, ValueError, RecursionError):
            return None
    stage = (config.get("zero_optimization") or {}).get("stage") if isinstance(config, dict) else None
    return stage if isinstance(stage, int) and not isinstance(stage, bool) else None


def zero3_source(accelerate_config: Optional[str], deepspeed: Any) -> Optional[str]:
    """Where this run's ZeRO stage 3 comes from, in words, or None when it does not train under
    ZeRO-3: the `accelerate launch` it runs under (ACCELERATE_DEEPSPEED_ZERO_STAGE), the recipe's
    `launch.accelerate_config` (its `deepspeed_config.zero_stage`, or the `zero_optimization.stage`
    of its `deepspeed_config_file`), or the recipe's `deepspeed:` JSON."""
    if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        return "this run's accelerate launch (ACCELERATE_DEEPSPEED_ZERO_STAGE=3)"
    if accelerate_config:
        try:
            with open(accelerate_config, encoding="utf-8") as f:
                text = f.read()
            acc = json.loads(text) if accelerate_config.lower().endswith(".json") else yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader
        except (OSError, ValueError, yaml.YAMLError, RecursionError):
            acc = None
        ds = acc.get("deepspeed_config") if isinstance(acc, dict) and acc.get("distributed_type") == "DEEPSPEED" else None
        if isinstance(ds, dict):
            name = os.path.basename(accelerate_config)
            if ds.get("zero_stage") == 3:
                return f"launch.accelerate_config {name}: zero_stage 3"
            file = ds.get("deepspeed_config_file")
            if isinstance(file, str) and file:
                full = os.path.join(os.path.dirname(accelerate_config), file)
                if _zero_stage(full if os.path.exists(full) else file) == 3:
                    return f"launch.accelerate_config {name}: deepspeed_config_file {file}, stage 3"
    if deepspeed and _zero_stage(deepspeed) == 3:
        return "deepspeed: zero_optimization.stage 3"
    return None


def check_chat_template(template: str, recipe_path: str, line: Any, source: str) -> None:
    """Compile `chat_template` now, as transformers will when it first formats a prompt: a Jinja
    syntax error is a RecipeError at the recipe's line, with the template's own line."""
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template as compile_template
    except ImportError:  # pragma: no cover - an older transformers: its sandboxed environment, as it builds it
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def compile_template(text: str) -> Any:
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
            return env.from_string(text)
    import jinja2

    try:
        compile_template(template)
    except jinja2.TemplateSyntaxError as e:
        in_file = f" in {source}" if source else ""
        raise RecipeError(f"{recipe_path}:{line if line is not None else '?'}: chat_template: Jinja syntax error at line "
                          f"{e.lineno} of the template{in_file}: {e.message}") from None


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
                   unknown_keys: Any, build: bool = True) -> tuple:
    """A recipe's flat TRL keys parsed into `classes` by TRL's own TrlParser, as open-r1 does,
    for every recipe kind that trains (GRPO, SFT): `model_name_or_path` and `dataset_name`
    resolved against the recipe's folder, `env:` applied to the environment first, `cli_args`
    overriding keys. An unknown key is an error worded by `unknown_keys(where)`. `build=False`
    stops after the keys' names, types and ranges are checked (returns ()): the dataclasses'
    own checks, some of which ask the machine (bf16 without a GPU), are not run."""
    from trl import TrlParser

    base = os.path.dirname(os.path.abspath(path))
    flat = dict(flat)
    for key in ("model_name_or_path", "dataset_name"):
        if key in flat:
            flat[key] = _resolve_relative(flat[key], base)
    if isinstance(flat.get("deepspeed"), str):  # a JSON file, relative to the recipe (TrainingArguments reads it)
        flat["deepspeed"] = read_deepspeed_config(flat["deepspeed"], path, lines.get("deepspeed"))
    env = flat.pop("env", None)
    if env is not None:
        if not isinstance(env, dict):
            raise RecipeError(f"{path}:{lines.get('env', '?')}: `env` must be a mapping of variable: value")
        for k, v in env.items():
            os.environ[str(k)] = str(v)
    parser = TrlParser(classes)

    def argparse_error(message: str) -> None:  # instead of the usage text on stderr and SystemExit(2)
        import re

        m = re.match(r"argument --([\w-]+)", message)
        key = m.group(1).replace("-", "_") if m else None
        given = any(a == f"--{key}" or a.startswith(f"--{key}=") for a in (cli_args or []) if isinstance(a, str))
        if key in flat and key in lines and not given:
            raise RecipeError(f"{path}:{lines[key]}: {key}: {message.split(': ', 1)[-1]}")
        raise RecipeError(f"{path}: invalid command-line arguments: {message}")

    parser.error = argparse_error  # type: ignore[method-assign]
    try:
        unknown = parser.set_defaults_with_config(**flat)
    except Exception as e:  # noqa: BLE001 - argparse default errors
        raise RecipeError(f"{path}: {e}") from None
    if unknown:
        keys = [s[2:] for s in unknown if isinstance(s, str) and s.startswith("--")]
        where = ", ".join(f"{k} (line {lines.get(k, '?')})" for k in keys) or " ".join(map(str, unknown))
        msg = unknown_keys(where)
        first = min((lines[k] for k in keys if k in lines), default=None)
        if first is not None and msg.startswith(f"{path}: "):  # FILE:LINE, so a terminal links it
            msg = f"{path}:{first}: {msg[len(path) + 2:]}"
        raise RecipeError(msg)
    check_flat_values(path, flat, lines, classes)
    if not build:
        return ()
    try:
        parsed = tuple(parser.parse_args_into_dataclasses(args=list(cli_args or [])))
        check_scheduler(path, lines, parsed)
        check_some_steps(path, lines, parsed)
        return parsed
    except SystemExit as e:
        raise RecipeError(f"{path}: invalid arguments (argparse exit {e.code})") from None
    except RecipeError:
        raise
    except ImportError as e:  # transformers 5 needs the deepspeed package to read a DeepSpeed config
        key = "deepspeed" if "deepspeed" in str(e).lower() and "deepspeed" in lines else None
        raise RecipeError(f"{path}:{lines[key]}: deepspeed: {e}" if key else f"{path}: {e}") from None
    except (ValueError, TypeError, ArithmeticError) as e:  # ArithmeticError: int(.inf) in a TRL check
        # a dataclass check names its key first ("max_train_samples must be ..."), else somewhere
        # ("--dataloader_prefetch_factor can only be set ...", "At least one of `x` or `y` ..."): the
        # line of the first key the message names that the recipe sets
        key = next((k for k in lines if str(e).startswith(f"{k} ")), None) or _first_named_key(str(e), flat, lines)
        if key is None:  # GRPOConfig's batch arithmetic names no key: the first of its keys the recipe sets
            said = next((keys for phrase, keys in _UNNAMED_KEYS if phrase in str(e)), ())
            key = next((k for k in said if k in flat and k in lines), None)
        if key is None and isinstance(e, ArithmeticError):  # int(.inf) inside TRL: name the key that holds it
            bad = next((k for k, v in flat.items() if isinstance(v, float) and not math.isfinite(v)), None)
            if bad is not None:
                raise RecipeError(f"{path}:{lines.get(bad, '?')}: {bad}: {flat[bad]} is not a finite number ({e})") from None
        raise RecipeError(f"{path}:{lines[key]}: {e}" if key else f"{path}: {e}") from None


# Checks of GRPOConfig / TrainingArguments whose message names no key, and the keys they are about
_UNNAMED_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("number of generations", ("num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                               "steps_per_generation", "generation_batch_size")),
    ("global batch size", ("generation_batch_size", "per_device_train_batch_size", "steps_per_generation")),
    ("batch size", ("per_device_train_batch_size", "gradient_accumulation_steps", "generation_batch_size")),
)


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


# Flat keys whose bound is GRPOConfig's own check, with TRL's message (the validator's CC203, not CC103)
RULE_OWNED = ("num_generations",)
# Flat keys whose runtime reads YAML's true/false though the type says text: train.resolve_resume
# (`resume_from_checkpoint: true` resumes from the last checkpoint), TrainingArguments (`fsdp: false`),
# TRL 1.x GRPOConfig (`scale_rewards: false` is "none", true is "group"), transformers 5
# (`trackio_static_space_id: false`: no static Space). schema.py marks them `x-accepts-bool` for the validator.
BOOL_AS_TEXT = ("resume_from_checkpoint", "fsdp", "scale_rewards", "trackio_static_space_id")
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "null", "array": "a list", "object": "a mapping"}


def _describe_types(types: list[str]) -> str:
    """The types a schema entry takes, in words, as the validator's describeTypes writes them."""
    words = [_TYPE_WORDS.get(t, t) for t in types if t != "null"] + (["null"] if "null" in types else [])
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}" if words else "a value"


def _js_number(v: float) -> str:
    """A number as the validator (JavaScript) prints it: 0 for 0.0, -0.000001 for -1e-06, 1e-7."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    if isinstance(v, float) and 1e-6 <= abs(v) < 1e21:
        from decimal import Decimal

        return format(Decimal(repr(v)), "f")
    return repr(v).replace("e-0", "e-").replace("e+0", "e+")


def _yaml11_text_number(text: str) -> Optional[str]:
    """`text` spelled so PyYAML reads it as a number (a digit before and after the dot, a signed
    exponent: `1e8` -> `1.0e+8`, `1e-6` -> `1.0e-6`, `-.5` -> `-0.5`) when it is a number YAML 1.2
    reads and PyYAML's (YAML 1.1) resolvers leave as a string, else None. The validator's
    yaml11Spelling (extension/src/core/recipe/values.ts) gives the same."""
    import re

    import yaml

    m = re.fullmatch(r"([-+]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([-+]?)([0-9]+))?", text)
    if not m or not re.fullmatch(_YAML12_NUMBER, text):
        return None
    if yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
        return None
    sign, whole, frac, esign, exp = m.groups()
    return f"{sign}{whole or '0'}.{frac or '0'}" + (f"e{esign or '+'}{exp}" if exp else "")


def _not_text(value: Any, text: Optional[str]) -> str:
    """A date or `!!binary` data in words, as the validator's describeNode writes it."""
    if isinstance(value, bytes):
        return "binary data (!!binary)"
    return f"a date (YAML 1.1 reads `{text if text is not None else value}` as a date)"


def _got(value: Any, scalar: Optional[tuple[str, bool, str]]) -> str:
    """What a value is, in words, as the validator's describeNode writes it."""
    import json

    text = scalar[0] if scalar else None
    if value is None:
        return "an empty value (null)" if text == "" else f"null ({text if text is not None else 'null'})"
    if isinstance(value, bool):
        return f"{str(value).lower()} (YAML 1.1 reads `{text if text is not None else str(value).lower()}` as a boolean)"
    if isinstance(value, (int, float)):
        return f"the number {text if text is not None else value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime.date, bytes)):
        return _not_text(value, text)
    s = str(value)
    return f"the string {json.dumps(s[:40] + '…' if len(s) > 40 else s, ensure_ascii=False)}"


def _type_problem(key: str, value: Any, types: list[str], scalar: Optional[tuple[str, bool, str]], converted: bool) -> Optional[str]:
    """`key expects ..., got ...` when `value` does not fit the schema `types`, else None. `converted`:
    a top-level value, which argparse converts with the field's type (a string "3" is 3 for an
    integer); a list item is used as YAML gives it."""
    if not types or "object" in types and isinstance(value, dict):
        return None
    hint = ""
    if value is None:  # a top-level null is the class's business (`debug: null` is no debug options)
        ok = "null" in types or converted
    elif isinstance(value, bool):
        ok = "boolean" in types or key in BOOL_AS_TEXT
        if "string" in types and scalar:
            hint = f" Quote it to keep the text: '{scalar[0]}'."
    elif isinstance(value, int):
        ok = bool({"integer", "number", "string"} & set(types))
    elif isinstance(value, float):
        ok = "number" in types or ("string" in types and "integer" not in types)
        if not ok and "integer" in types and math.isfinite(value) and value.is_integer():
            hint = f" Write it without a decimal point: {int(value)}."
    elif isinstance(value, str):
        # argparse's string_to_bool (transformers) takes these for a boolean
        ok = "string" in types or converted and "boolean" in types and value.lower() in (
            "yes", "true", "t", "y", "1", "no", "false", "f", "n", "0")
        if not ok and converted and ("integer" in types or "number" in types):
            try:  # argparse's type=int / type=float
                int(value) if "integer" in types else float(value)
                ok = True
            except ValueError:
                try:
                    number = float(value)
                    if "integer" in types and math.isfinite(number) and number.is_integer():
                        hint = f" Write it as {int(number)}."
                except ValueError:
                    pass
        dotted = _yaml11_text_number(value) if scalar and scalar[1] else None
        if not ok and not hint and dotted and "number" in types:
            hint = f" YAML 1.1 (PyYAML) reads {value} as text; write it as {dotted}."
    elif isinstance(value, list):
        ok = "array" in types
    elif isinstance(value, dict):
        ok = "object" in types
    elif isinstance(value, (datetime.date, bytes)):  # `run_name: 2024-05-01`: TrainingArguments' to_json_string failed on it
        ok = False
        if "string" in types and isinstance(value, datetime.date) and scalar and scalar[1]:
            hint = f" Quote it to keep the text: '{scalar[0]}'."
    else:
        ok = True
    return None if ok else f"{key} expects {_describe_types(types)}, got {_got(value, scalar)}.{hint}"


def _out_of_range(key: str, value: Any, range_key: Optional[str] = None) -> Optional[str]:
    """`key = value is out of range: it must be ...` (the validator's CC103) for a finite number
    outside schema.RANGES[range_key or key], else None."""
    from .schema import RANGES, bound_words

    r = RANGES.get(range_key or key)
    if not r or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    bad = ("minimum" in r and v < r["minimum"]) or ("maximum" in r and v > r["maximum"]) or (
        "exclusiveMinimum" in r and v <= r["exclusiveMinimum"]) or ("exclusiveMaximum" in r and v >= r["exclusiveMaximum"])
    return f"{key} = {_js_number(v)} is out of range: it must be {bound_words(range_key or key)}." if bad else None


def check_flat_values(path: str, flat: dict, lines: dict[str, int], classes: list) -> None:
    """What TrlParser passes on unchecked, refused with the key's line, as the validator reports it:
    a single value for a list key (CC101), null for a list key that does not take None (CC101:
    `include_for_metrics: null` fails the Trainer's `"inputs" in args.include_for_metrics` at the
    first evaluation, `reward_funcs: null` the trainer's setup), a number or a boolean for a key
    that takes a list or one string (CC101: PEFT fails on `target_modules=5` when the model is
    wrapped) and NaN / infinity for a key with a numeric bound (CC103; `max_grad_norm: .inf`, no
    clipping, is the one infinite value allowed)."""
    from .schema import RANGES, _type_schema, bound_words

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
        if isinstance(value, float) and not math.isfinite(value) and _int_annotation(hint):
            # argparse's int() fails deep inside the Trainer, or a loop never ends (max_steps); CC101,
            # as the validator says it for an integer key, with a bound or without
            raise RecipeError(f"{where} expects an integer, got {value}")
        bound = bound_words(key)
        if bound and _non_finite(value) and not (RANGES[key].get("x-allow-infinity") and float(value) == math.inf):
            raise RecipeError(f"{where} = {value} is not a finite number: it must be {bound}")
        if hint is None:
            continue
        spec = _type_schema(hint)
        types = spec.get("type") or []
        types = types if isinstance(types, list) else [types]
        types = types + ["string"] if key in LIST_OR_STRING and "string" not in types else types
        scalars = getattr(lines, "scalars", {})
        if key in LIST_OR_STRING and isinstance(value, dict):
            raise RecipeError(f"{where} expects a list or a string, got a mapping.")
        problem = _type_problem(key, value, types, scalars.get(key), converted=True)
        if problem:  # argparse passed it on as it is (a float max_steps failed in range() mid-run) or failed with usage
            raise RecipeError(f"{path}:{lines.get(key, '?')}: {problem}")
        problem = _out_of_range(key, value) if not isinstance(value, (list, dict)) and key not in RULE_OWNED else None
        if problem:  # CC103
            raise RecipeError(f"{path}:{lines.get(key, '?')}: {problem}")
        items = spec.get("items", {}).get("type") if isinstance(value, list) else None
        for i, item in enumerate(value if items else ()):
            # a list is used as YAML gives it: `2e-1` is text to PyYAML and reached GRPOTrainer as a string
            item_types = items if isinstance(items, list) else [items]
            at, scalar = f"{key}[{i}]", scalars.get(f"{key}[{i}]")
            problem = _type_problem(at, item, item_types, scalar, converted=False)
            if problem is None and key in LIST_OR_STRING and isinstance(item, (int, float)) and not isinstance(item, bool):
                problem = f"{at} expects a string, got {_got(item, scalar)}. Quote it if it is meant as text: '{item}'."
            if problem is None and isinstance(item, float) and not math.isfinite(item):
                problem = f"{at} = {scalar[0] if scalar else item} is not a finite number"
            if problem:
                raise RecipeError(f"{path}:{lines.get(at, lines.get(key, '?'))}: {problem}")
        if isinstance(value, dict):
            _check_text_numbers(path, key, value, lines)


def check_some_steps(path: str, lines: dict, parsed: tuple) -> None:
    """`num_train_epochs: 0` with max_steps <= 0 (its default, -1) trains no step: the Trainer
    ends at once as completed and SFT saves the untrained model as its output. Refused with the
    line of num_train_epochs."""
    ta = next((a for a in parsed if hasattr(a, "num_train_epochs") and hasattr(a, "max_steps")), None)
    if ta is None or ta.max_steps > 0 or ta.num_train_epochs != 0:
        return
    raise RecipeError(f"{path}:{lines.get('num_train_epochs', '?')}: num_train_epochs: 0 with max_steps {ta.max_steps} trains "
                      "no step: set num_train_epochs above 0, or max_steps to the number of steps to train")


def check_scheduler(path: str, lines: dict, parsed: tuple) -> None:
    """The learning-rate schedule built as the trainer builds it when training starts (CC212,
    CC234): transformers' get_scheduler with the recipe's lr_scheduler_type and
    lr_scheduler_kwargs, on a one-parameter optimizer. A key the schedule does not take
    (`lr_scheduler_kwargs: {min_lr: 1e-6}` with `cosine`) fails there with a TypeError, a missing
    one (`cosine_with_min_lr` without min_lr) with a ValueError: after the model, the data and
    the vLLM server were loaded. Refused at load, with the key's line."""
    args = next((a for a in parsed if hasattr(a, "lr_scheduler_type") and hasattr(a, "lr_scheduler_kwargs")), None)
    if args is None:
        return
    kwargs = args.lr_scheduler_kwargs or {}
    if isinstance(kwargs, str):  # TrainingArguments takes a JSON string too
        try:
            kwargs = json.loads(kwargs)
        except ValueError:
            return
    if not isinstance(kwargs, dict):
        return
    import torch
    from transformers.optimization import get_scheduler

    kind = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    # the recipe's learning rate: a schedule checks its kwargs against it (polynomial's lr_end)
    lr = getattr(args, "learning_rate", None)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr if isinstance(lr, (int, float)) and lr > 0 else 1e-3)
    try:
        with warnings.catch_warnings():  # (warmup_stable_decay warns about these stand-in step counts)
            warnings.simplefilter("ignore")
            get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=1, num_training_steps=10, scheduler_specific_kwargs=dict(kwargs))
    except (TypeError, ValueError, KeyError) as e:  # (KeyError: torch's, for last_epoch without initial_lr)
        line = lines.get("lr_scheduler_kwargs", lines.get("lr_scheduler_type", "?"))
        raise RecipeError(f"{path}:{line}: {e} (lr_scheduler_type {kind} with lr_scheduler_kwargs {json.dumps(kwargs, default=str)}: the trainer builds its learning-rate schedule so when training starts)") from None


def _check_text_numbers(path: str, key: str, value: dict, lines: dict) -> None:
    """A number inside a mapping (`lr_scheduler_kwargs: {min_lr: 1e-6}`) that PyYAML read as text
    is refused with its line: the scheduler (or whatever reads the mapping) fails on the string
    once the model is loaded."""
    scalars = getattr(lines, "scalars", {})
    seen: set[int] = set()

    def walk(v: Any, at: str, depth: int) -> None:
        if id(v) in seen or depth > MAX_DEPTH:
            return
        seen.add(id(v))
        pairs = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        for k, item in pairs:
            p = f"{at}.{k}" if isinstance(v, dict) else f"{at}[{k}]"
            scalar = scalars.get(p)
            spelled = _yaml11_text_number(item) if isinstance(item, str) and scalar and scalar[1] else None
            if spelled:
                raise RecipeError(f"{path}:{lines.get(p, lines.get(key, '?'))}: {p} expects a number, got {_got(item, scalar)}. "
                                  f"YAML 1.1 (PyYAML) reads {item} as text; write it as {spelled}.")
            walk(item, p, depth + 1)

    walk(value, key, 0)


def allocator_section(raw: dict, path: str, lines: dict[str, int]) -> dict:
    """The recipe's `allocator:` mapping ({} when absent), checked as the allocator will read it:
    an unknown key or a bad value is an error now, not a silent fall back to per-label budgets
    in the middle of a run (the validator reports the same keys)."""
    allocator = raw.get("allocator")
    allocator = {} if allocator is None else allocator
    if not isinstance(allocator, dict):
        raise RecipeError(f"{path}:{lines.get('allocator', '?')}: `allocator:` must be a mapping")
    # each key alone first, so an error names its own line (as the validator and the gateway do);
    # then the section whole
    for key, value in allocator.items():
        check_allocator({key: value}, f"{path}:{lines.get(f'allocator.{key}', lines.get('allocator', '?'))}")
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
    that is not below `max_completion_length` (CC233: every completion is penalised) and evaluation
    (`eval_strategy` not `no`) on a prompt set with no test split (CC239: the bundled set or a single
    file; it used to fail when the trainer started, with a traceback)."""
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
    top_k = getattr(training_args, "top_k", None)
    vllm = bool(getattr(training_args, "use_vllm", False))
    if isinstance(top_k, int) and top_k < (-1 if vllm else 0):  # CC240: fails at the first generation
        said = ("is refused by vLLM at the first generation: use a positive number of tokens, or 0 or -1 for no top-k filter."
                if vllm else "is refused by transformers at the first generation (top_k has to be a strictly positive integer; "
                "0 turns the filter off): use a positive number of tokens, or 0 for no top-k filter.")
        raise RecipeError(f"{path}:{lines.get('top_k', '?')}: top_k {top_k} {said}")
    strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
    if strategy != "no":
        from .prompt_sets import has_splits

        if not has_splits(script_args.dataset_name):  # CC239: a single file has no test split
            bundled = script_args.dataset_name == BUNDLED_DATASET_NAME
            given = BUNDLED_DATASET_NAME if bundled else os.path.basename(str(script_args.dataset_name))
            what = "the bundled prompt set" if bundled else "a single prompt file"
            raise RecipeError(f"{path}:{lines.get('eval_strategy', '?')}: eval_strategy is '{strategy}', but dataset_name {given}"
                              f"{'' if 'dataset_name' in lines else ' (the default)'} is {what}, which has no "
                              f"'{script_args.dataset_test_split}' split: evaluation would run on the training prompts. "
                              "Give a folder with train.jsonl and test.jsonl, or set eval_strategy: no.")
    cache = script_args.soft_punish_cache
    max_len = training_args.max_completion_length or 256  # the reward's own fallback (build_reward_funcs)
    if "soft_overlong_punishment" in names and cache >= max_len:
        said = (f"max_completion_length ({max_len}, line {lines['max_completion_length']})" if "max_completion_length" in lines
                else f"max_completion_length ({max_len}, the default)")
        line = lines.get("soft_punish_cache") or lines.get("max_completion_length") or lines.get("reward_funcs", "?")
        raise RecipeError(f"{path}:{line}: soft_punish_cache ({cache}) must be less than {said}: "
                          "soft_overlong_punishment penalises completions longer than max_completion_length - "
                          "soft_punish_cache tokens, so it would penalise every completion. Lower soft_punish_cache.")


def check_sync_ref_model(path: str, lines: dict[str, int], training_args: Any, model_args: Any) -> None:
    """`sync_ref_model: true` with `beta: 0` (TRL 1.x's default) or `use_peft: true`: GRPO keeps
    no reference model then, and TRL 1.x's GRPOTrainer refuses it when it is built, after the
    model is loaded. Refused at load with the key's line on TRL 1.x (the validator's CC237; on
    TRL 0.18, which ignores it, the validator warns)."""
    import trl

    if not getattr(training_args, "sync_ref_model", False) or not trl.__version__.split(".")[0].isdigit() or int(trl.__version__.split(".")[0]) < 1:
        return
    if training_args.beta == 0:
        default = "" if "beta" in lines else f" (the default of TRL {trl.__version__})"
        why, fix = f"beta is 0{default}, so GRPO keeps no reference model", ", or beta above 0 (e.g. 0.04)"
    elif getattr(model_args, "use_peft", False):
        why, fix = "use_peft is true, so GRPO keeps no reference model (it disables the adapter to get the reference)", ""
    else:
        return
    raise RecipeError(f"{path}:{lines.get('sync_ref_model', '?')}: sync_ref_model: true, but {why}: there is nothing to sync, "
                      f"and TRL {trl.__version__} refuses it when the trainer is built (GRPOTrainer, after the model is "
                      f"loaded). Set sync_ref_model: false{fix}.")


def _unknown_grpo_keys(path: str, raw: dict) -> Any:
    """How a GRPO recipe's unknown keys are worded (parse_trl_keys' `unknown_keys`)."""
    def unknown_keys(where: str) -> str:
        from .trl_compat import line_mismatch

        said = (raw.get("launch") or {}).get("trl") if isinstance(raw.get("launch"), dict) else None
        hint = line_mismatch(str(said) if said is not None else None, _trl_version())
        return f"{path}: unknown keys for TRL {_trl_version()}: {where}" + (f" ({hint})" if hint else "")

    return unknown_keys


def check_recipe_keys(path: str) -> None:
    """What the runtime refuses in a recipe whatever the machine, checked without building the
    trainer's configuration: its sections (`launch:`, `safety:`, `allocator:`) and each flat key's
    name, type and range (parse_trl_keys with build=False), or, for a `kind: eval` recipe, the
    whole eval recipe. conscience.launch runs it before it starts anything (also for --dry-run
    and --plan), so `max_steps: "eight"` is one FILE:LINE error there rather than one per rank
    under accelerate's traceback. The configuration's own checks (TrainingArguments, GRPOConfig)
    are left to the trainer: some ask the machine (bf16 without a GPU) or the world size, and
    the launcher must not touch the GPUs it hands to the ranks. `env:` is applied to the
    environment while the keys are read and then put back. Raises RecipeError."""
    raw, _, lines = read_recipe_yaml(path)
    kind = recipe_kind(raw, path, lines)
    if kind == "eval":
        from .eval import load_eval_recipe

        try:
            load_eval_recipe(path)
        except ValueError as e:  # EvalError
            raise RecipeError(str(e)) from None
        return
    flat = {k: v for k, v in raw.items() if k not in SECTION_NAMES and k != "kind"}
    parse_section("launch", raw.get("launch"), path, lines)
    parse_section("safety", raw.get("safety"), path, lines)
    allocator_section(raw, path, lines)
    if kind == "sft":
        from .sft import sft_dataclasses

        classes, unknown = sft_dataclasses(), (lambda where: f"{path}: unknown keys for a kind: sft recipe: {where}")
    else:
        classes, unknown = recipe_dataclasses(), _unknown_grpo_keys(path, raw)
    saved = dict(os.environ)
    try:
        parse_trl_keys(path, flat, lines, classes, None, unknown, build=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)


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
        launch.accelerate_config = check_accelerate_config(launch.accelerate_config, path, lines.get("launch.accelerate_config"))
    if safety.eval_recipe:
        safety.eval_recipe = os.path.normpath(os.path.join(base, safety.eval_recipe))

    script_args, training_args, model_args = parse_trl_keys(path, flat, lines, recipe_dataclasses(), cli_args,
                                                            _unknown_grpo_keys(path, raw))
    refuse_quantized(path, lines, model_args)
    check_grpo_keys(path, lines, script_args, training_args)
    check_sync_ref_model(path, lines, training_args, model_args)
    if script_args.chat_template:  # a file's text, read now: a missing file is an error with its line (as SFT and eval)
        given = script_args.chat_template
        try:
            script_args.chat_template = read_chat_template(given, path, lines.get("chat_template"))
        except ValueError as e:
            raise RecipeError(str(e)) from None
        check_chat_template(script_args.chat_template, path, lines.get("chat_template"),
                            given if script_args.chat_template != given else "")
    if safety.eval_recipe:
        check_eval_recipe(safety.eval_recipe, path, lines.get("safety.eval_recipe"), safety, script_args.system_prompt, allocator,
                          str(raw["safety"]["eval_recipe"]))
        zero3 = zero3_source(launch.accelerate_config, getattr(training_args, "deepspeed", None)) if safety.eval_steps > 0 else None
        if zero3:  # the validator's CC308
            raise RecipeError(
                f"{path}:{lines.get('safety.eval_recipe', '?')}: safety.eval_recipe: evaluation during training generates on "
                f"rank 0 alone, which ZeRO-3 cannot do ({zero3}): each rank holds a shard of the weights, so rank 0 would wait "
                "for the others forever. Evaluate the saved checkpoints with `conscience eval` instead, train with ZeRO-2, "
                "or set safety.eval_steps: 0.")
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
