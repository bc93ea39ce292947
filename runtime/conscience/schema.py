"""Generate the recipe JSON Schema from the real, pinned TRL.

    python -m conscience.schema [--kind grpo|sft] [--out FILE]

introspects the dataclasses a recipe's flat keys are parsed into (our script arguments,
TRL's ``GRPOConfig`` with the ``TrainingArguments`` fields it inherits, TRL's
``ModelConfig``: see :func:`conscience.recipe.recipe_dataclasses`) and the dataclasses of
our sections (``launch:``, ``safety:``, ``allocator:``), and prints (or writes) a JSON
Schema (draft-07, what yaml-language-server reads).

Besides the standard keywords (type, default, description, enum, numeric bounds) the schema
carries an ``x-conscience`` block that the TypeScript validator (extension/src/core/recipe)
reads: the TRL and transformers versions, the known reward names, the table of removed /
renamed / future fields, and which dataclass each key comes from.

Regenerate after changing the TRL pin with ``npm run schema``.
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import typing
from typing import Any, Optional

SCHEMA_ID = "https://chain-of-conscience.dev/schemas/recipe.schema.json"

# Numeric bounds. TRL and transformers state these in help strings or enforce them in
# __post_init__ / at start-up; they are written down here because dataclass metadata has no
# structured form for them. Each entry names where the bound comes from.
RANGES: dict[str, dict[str, Any]] = {
    # GRPOConfig (help strings and __post_init__)
    "top_p": {"exclusiveMinimum": 0, "maximum": 1, "x-source": "GRPOConfig help: Must be in (0, 1]"},
    "min_p": {"minimum": 0, "maximum": 1, "x-source": "GRPOConfig help: a value between 0.0 and 1.0"},
    "temperature": {"exclusiveMinimum": 0, "x-source": "transformers: temperature has to be a strictly positive float"},
    "repetition_penalty": {"exclusiveMinimum": 0, "x-source": "transformers (and vLLM): `penalty` has to be a strictly positive float, raised at the first generation"},
    "num_generations": {"minimum": 2, "x-source": "GRPOConfig.__post_init__: at least 2 generations per prompt"},
    "max_completion_length": {"minimum": 1, "x-source": "generation needs at least one new token"},
    "max_prompt_length": {"minimum": 1, "x-source": "prompt truncation length"},
    "generation_batch_size": {"minimum": 1, "x-source": "GRPOConfig batch arithmetic"},
    "steps_per_generation": {"minimum": 1, "x-source": "GRPOConfig batch arithmetic"},
    "num_iterations": {"minimum": 1, "x-source": "GRPOTrainer: updates per generation round"},
    "vllm_gpu_memory_utilization": {"exclusiveMinimum": 0, "maximum": 1, "x-source": "vLLM gpu_memory_utilization is a fraction"},
    "vllm_tensor_parallel_size": {"minimum": 1, "x-source": "GRPOTrainer: divides the world size"},
    "vllm_server_port": {"minimum": 1, "maximum": 65535, "x-source": "TCP port"},
    "vllm_server_timeout": {"minimum": 0, "x-source": "seconds"},
    "beta": {"minimum": 0, "x-source": "KL coefficient"},
    "epsilon": {"minimum": 0, "x-source": "clip range"},
    "ref_model_mixup_alpha": {"minimum": 0, "maximum": 1, "x-source": "TR-DPO alpha"},
    "ref_model_sync_steps": {"minimum": 1, "x-source": "TR-DPO tau"},
    # TrainingArguments
    "per_device_train_batch_size": {"minimum": 1, "x-source": "batch size"},
    "per_device_eval_batch_size": {"minimum": 1, "x-source": "batch size"},
    "gradient_accumulation_steps": {"minimum": 1, "x-source": "accumulation steps"},
    "learning_rate": {"minimum": 0, "x-source": "learning rate"},
    "warmup_ratio": {"minimum": 0, "maximum": 1, "x-source": "TrainingArguments.__post_init__: warmup_ratio must lie in range [0,1]"},
    "warmup_steps": {"minimum": 0, "x-source": "TrainingArguments.__post_init__: 0 or a positive integer"},
    "logging_steps": {"minimum": 0, "x-source": "TrainingArguments help"},
    "save_steps": {"minimum": 0, "x-source": "TrainingArguments help"},
    "eval_steps": {"minimum": 0, "x-source": "TrainingArguments help"},
    "num_train_epochs": {"minimum": 0, "x-source": "epochs"},
    # the Trainer takes every max_steps <= 0 as "train num_train_epochs epochs": -3 is not 3 steps
    "max_steps": {"minimum": -1, "x-source": "TrainingArguments: a step count, or -1 (the default) to train num_train_epochs epochs"},
    "weight_decay": {"minimum": 0, "x-source": "weight decay"},
    # `.inf` is a legitimate value here: clip_grad_norm_(max_norm=inf) never clips but the norm is
    # still computed and logged (0 skips clipping and the grad_norm log); the only bound allowed to be infinite
    "max_grad_norm": {"minimum": 0, "x-allow-infinity": True, "x-source": "gradient clipping norm; .inf = log the norm, never clip"},
    "dataloader_num_workers": {"minimum": 0, "x-source": "worker processes"},
    # Trainer.__init__ seeds numpy with it (after the model and data are loaded), which refuses others
    "seed": {"minimum": 0, "maximum": 4294967295, "x-source": "numpy.random.seed: Seed must be between 0 and 2**32 - 1"},
    # ModelConfig
    "lora_r": {"minimum": 1, "x-source": "LoRA rank"},
    "lora_dropout": {"minimum": 0, "maximum": 1, "x-source": "dropout probability"},
    # our script arguments (conscience.recipe.ConscienceScriptArguments.__post_init__)
    "repetition_max_penalty": {"maximum": 0, "x-source": "__post_init__: should not be positive"},
    "repetition_n_grams": {"minimum": 1, "x-source": "__post_init__"},
    "soft_punish_cache": {"minimum": 1, "x-source": "__post_init__"},
    "max_train_samples": {"minimum": 1, "x-source": "row count"},
    "answer_min_words": {"minimum": 0, "x-source": "word count"},
    "answer_max_words": {"minimum": 1, "x-source": "word count"},
    # launch: (LaunchConfig.__post_init__)
    "launch.num_processes": {"minimum": 1, "x-source": "LaunchConfig.__post_init__"},
    "launch.num_machines": {"minimum": 1, "x-source": "LaunchConfig.__post_init__"},
    "launch.main_process_port": {"minimum": 1, "maximum": 65535, "x-source": "LaunchConfig.__post_init__"},
    "launch.vllm_gpu_memory_utilization": {"exclusiveMinimum": 0, "maximum": 1, "x-source": "LaunchConfig.__post_init__"},
    "launch.vllm_server_gpus": {"minimum": 1, "x-source": "GPU count"},
    "launch.vllm_tensor_parallel_size": {"minimum": 1, "x-source": "trl vllm-serve"},
    "launch.vllm_data_parallel_size": {"minimum": 1, "x-source": "trl vllm-serve"},
    # safety: (SafetyConfig.__post_init__)
    "safety.budget_harmful": {"minimum": 0, "x-source": "SafetyConfig.__post_init__"},
    "safety.budget_borderline": {"minimum": 0, "x-source": "SafetyConfig.__post_init__"},
    "safety.budget_benign": {"minimum": 0, "x-source": "SafetyConfig.__post_init__"},
    "safety.max_budget": {"minimum": 0, "x-source": "SafetyConfig.__post_init__"},
    "safety.samples_per_step": {"minimum": 0, "x-source": "SafetyConfig.__post_init__"},
    "safety.budget_scale": {"minimum": 1, "x-source": "SafetyConfig.__post_init__"},
    "safety.eval_steps": {"minimum": 0, "x-source": "SafetyConfig.__post_init__"},
    # allocator: (AllocatorConfig.__post_init__)
    "allocator.risk_harmful": {"minimum": 0, "maximum": 1, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.ambiguity_deep": {"minimum": 0, "maximum": 1, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.risk_standard": {"minimum": 0, "maximum": 1, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.ambiguity_standard": {"minimum": 0, "maximum": 1, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.budget_none": {"minimum": 0, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.budget_brief": {"minimum": 0, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.budget_standard": {"minimum": 0, "x-source": "AllocatorConfig.__post_init__"},
    "allocator.budget_deep": {"minimum": 0, "x-source": "AllocatorConfig.__post_init__"},
    # a kind: sft recipe's script arguments (conscience.sft.SftScriptArguments.__post_init__)
    "probe_prompts": {"minimum": 0, "x-source": "SftScriptArguments.__post_init__"},
    "probe_steps": {"minimum": 0, "x-source": "SftScriptArguments.__post_init__"},
    "probe_max_new_tokens": {"minimum": 0, "x-source": "SftScriptArguments.__post_init__"},
    "probe_temperature": {"minimum": 0, "x-source": "SftScriptArguments.__post_init__"},
    # a kind: eval recipe (conscience.eval: EvalConfig, EndpointConfig, JudgeConfig __post_init__);
    # its flat keys are `eval.<name>`, so they never pick up a GRPO bound of the same name
    "eval.max_prompts": {"minimum": 1, "x-source": "EvalConfig.__post_init__"},
    "eval.batch_size": {"minimum": 1, "x-source": "EvalConfig.__post_init__"},
    "eval.max_new_tokens": {"minimum": 1, "x-source": "EvalConfig.__post_init__"},
    "eval.tensor_parallel_size": {"minimum": 1, "x-source": "EvalConfig.__post_init__"},
    "eval.temperature": {"minimum": 0, "x-source": "EvalConfig.__post_init__: 0 = greedy"},
    "eval.top_p": {"exclusiveMinimum": 0, "maximum": 1, "x-source": "EvalConfig.__post_init__"},
    "eval.gpu_memory_utilization": {"exclusiveMinimum": 0, "maximum": 1, "x-source": "EvalConfig.__post_init__"},
    "endpoint.timeout_s": {"exclusiveMinimum": 0, "x-source": "EndpointConfig.__post_init__"},
    "endpoint.max_retries": {"minimum": 0, "x-source": "EndpointConfig.__post_init__"},
    "endpoint.concurrency": {"minimum": 1, "x-source": "EndpointConfig.__post_init__"},
    "judge.timeout_s": {"exclusiveMinimum": 0, "x-source": "JudgeConfig.__post_init__"},
    "judge.max_retries": {"minimum": 0, "x-source": "JudgeConfig.__post_init__"},
    "judge.concurrency": {"minimum": 1, "x-source": "JudgeConfig.__post_init__"},
}

# The RANGES prefix of the dataclasses whose fields are not flat keys of a training recipe: their
# range key is `<prefix>.<field>` (every caller passes it qualified: build_schema below for the
# sections, conscience.eval.build_schema for an eval recipe), so an eval key gets its own bound,
# not a GRPO key's of the same name (EvalConfig.temperature may be 0, GRPOConfig.temperature may not).
RANGE_PREFIX: dict[str, str] = {
    "EvalConfig": "eval", "EndpointConfig": "endpoint", "JudgeConfig": "judge",
    "SafetyConfig": "safety", "LaunchConfig": "launch", "AllocatorConfig": "allocator",
}


def qualified_range_key(cls: type, field_name: str) -> str:
    """The RANGES key of `cls`'s field: qualified with RANGE_PREFIX, or bare for a flat key."""
    prefix = RANGE_PREFIX.get(cls.__name__)
    return f"{prefix}.{field_name}" if prefix else field_name


def bound_words(key: str) -> Optional[str]:
    """A RANGES key's bound in words (">= 0", "> 0 and <= 1"), as the validator writes it; None
    when the key has no numeric bound. A bound rules out NaN and infinity, except `+inf` where the
    entry says x-allow-infinity."""
    r = RANGES.get(key)
    if not r:
        return None
    lo = f">= {r['minimum']}" if "minimum" in r else f"> {r['exclusiveMinimum']}" if "exclusiveMinimum" in r else ""
    hi = f"<= {r['maximum']}" if "maximum" in r else f"< {r['exclusiveMaximum']}" if "exclusiveMaximum" in r else ""
    return " and ".join(x for x in (lo, hi) if x) or None


# Fields that differ between the two supported TRL lines, seen from each (grpo.md §3.1, §4.1).
# The recipe picks its line with `launch.trl`; the validator reads the table of that line.
#   removed: not a field of this line; valid in the other one (with `replacement`, this line's name)
#   future:  valid in this line, gone from the other one (reported, as information, only when a
#            recipe does not say which TRL it is written for)
#   newer:   the other line's spelling of a field this line calls `replacement`
CHANGED_FIELDS_0_18: dict[str, dict[str, Any]] = {
    "vllm_device": {
        "status": "removed", "removed_in": "0.18.0", "replacement": None,
        "note": "vLLM runs as `trl vllm-serve` (vllm_mode: server) or inside the trainer "
        "(vllm_mode: colocate); TRL 0.18 silently ignores this key and TRL >= 0.19 rejects it.",
    },
    "max_prompt_length": {
        "status": "future", "deprecated_in": "0.26.0", "removed_in": "0.28.0", "replacement": None,
        "note": "From TRL 0.28 filter over-long prompts out of the dataset instead.",
    },
    "use_liger_loss": {
        "status": "future", "deprecated_in": "0.25.0", "removed_in": "0.28.0", "replacement": "use_liger_kernel",
        "note": "Renamed to use_liger_kernel in later TRL.",
    },
    "wandb_log_unique_prompts": {
        "status": "future", "deprecated_in": "0.26.0", "removed_in": "0.27.0", "replacement": "log_unique_prompts",
        "note": "Renamed to log_unique_prompts in later TRL.",
    },
    "vllm_guided_decoding_regex": {
        "status": "future", "deprecated_in": "0.27.0", "removed_in": "0.28.0", "replacement": "vllm_structured_outputs_regex",
        "note": "Renamed to vllm_structured_outputs_regex in later TRL.",
    },
    "torch_dtype": {
        "status": "future", "deprecated_in": "0.22.0", "removed_in": "1.0.0", "replacement": "dtype",
        "note": "Renamed to dtype in TRL 1.x (transformers 5).",
    },
    "warmup_ratio": {
        "status": "future", "deprecated_in": "0.27.0", "removed_in": "1.0.0", "replacement": "warmup_steps",
        "note": "transformers 5 removed warmup_ratio: a float below 1 in warmup_steps is the ratio.",
    },
    "log_unique_prompts": {
        "status": "newer", "replacement": "wandb_log_unique_prompts",
        "note": "This is the TRL >= 0.26 name; TRL 0.18 calls it wandb_log_unique_prompts.",
    },
    "vllm_structured_outputs_regex": {
        "status": "newer", "replacement": "vllm_guided_decoding_regex",
        "note": "This is the TRL >= 0.27 name; TRL 0.18 calls it vllm_guided_decoding_regex.",
    },
    "dtype": {
        "status": "newer", "replacement": "torch_dtype",
        "note": "This is the TRL 1.x (transformers 5) name; TRL 0.18 calls it torch_dtype.",
    },
    "num_generations_eval": {
        "status": "newer", "replacement": None,
        "note": "Added in a later TRL; TRL 0.18 uses num_generations for evaluation too.",
    },
}

CHANGED_FIELDS_1: dict[str, dict[str, Any]] = {
    "vllm_device": CHANGED_FIELDS_0_18["vllm_device"],
    "max_prompt_length": {
        "status": "removed", "removed_in": "0.28.0", "replacement": None,
        "note": "Filter over-long prompts out of the dataset instead (TRL 0.18 truncated them).",
    },
    "use_liger_loss": {
        "status": "removed", "removed_in": "0.28.0", "replacement": "use_liger_kernel",
        "note": "TRL 1.x calls it use_liger_kernel.",
    },
    "wandb_log_unique_prompts": {
        "status": "removed", "removed_in": "0.27.0", "replacement": "log_unique_prompts",
        "note": "TRL 1.x calls it log_unique_prompts.",
    },
    "vllm_guided_decoding_regex": {
        "status": "removed", "removed_in": "0.28.0", "replacement": "vllm_structured_outputs_regex",
        "note": "TRL 1.x calls it vllm_structured_outputs_regex.",
    },
    "torch_dtype": {
        "status": "removed", "removed_in": "1.0.0", "replacement": "dtype",
        "note": "TRL 1.x's ModelConfig (transformers 5) calls it dtype.",
    },
    "warmup_ratio": {
        "status": "removed", "removed_in": "1.0.0", "replacement": "warmup_steps",
        "note": "transformers 5 removed warmup_ratio: a float below 1 in warmup_steps is the ratio.",
    },
    "no_cuda": {
        "status": "removed", "removed_in": "1.0.0", "replacement": "use_cpu",
        "note": "transformers 5 removed no_cuda; use_cpu does the same.",
    },
    "per_gpu_train_batch_size": {
        "status": "removed", "removed_in": "1.0.0", "replacement": "per_device_train_batch_size",
        "note": "transformers 5 removed the per_gpu_ spelling.",
    },
    "per_gpu_eval_batch_size": {
        "status": "removed", "removed_in": "1.0.0", "replacement": "per_device_eval_batch_size",
        "note": "transformers 5 removed the per_gpu_ spelling.",
    },
    "overwrite_output_dir": {
        "status": "removed", "removed_in": "1.0.0", "replacement": None,
        "note": "transformers 5 removed overwrite_output_dir.",
    },
    "logging_dir": {
        "status": "removed", "removed_in": "1.0.0", "replacement": None,
        "note": "transformers 5 removed logging_dir; trackers choose their own folder.",
    },
    "group_by_length": {
        "status": "removed", "removed_in": "1.0.0", "replacement": None,
        "note": "transformers 5 replaced it with train_sampling_strategy: group_by_length.",
    },
}

# The table of the TRL line being introspected (the one installed where the schema is generated).
CHANGED_FIELDS = CHANGED_FIELDS_0_18


# GRPOConfig's own fields in the tables above: not keys of a `kind: sft` recipe in either line.
GRPO_ONLY_CHANGES = frozenset({
    "vllm_device", "max_prompt_length", "use_liger_loss", "wandb_log_unique_prompts", "vllm_guided_decoding_regex",
    "log_unique_prompts", "vllm_structured_outputs_regex", "num_generations_eval",
})

# SFTConfig's own changes between the lines (a `kind: sft` recipe).
SFT_CHANGES_0_18: dict[str, dict[str, Any]] = {
    "max_seq_length": {
        "status": "future", "deprecated_in": "0.18.0", "removed_in": "0.20.0", "replacement": "max_length",
        "note": "SFTConfig renamed it to max_length (TRL 0.18 copies max_seq_length into max_length).",
    },
}
SFT_CHANGES_1: dict[str, dict[str, Any]] = {
    "max_seq_length": {
        "status": "removed", "removed_in": "0.20.0", "replacement": "max_length",
        "note": "TRL 1.x's SFTConfig calls it max_length.",
    },
}


def changed_fields(trl_version: str, kind: str = "grpo") -> dict[str, dict[str, Any]]:
    """The changed-fields table seen from the TRL line of `trl_version`, for a recipe of `kind`."""
    v1 = int(trl_version.split(".")[0]) >= 1
    table = CHANGED_FIELDS_1 if v1 else CHANGED_FIELDS_0_18
    if kind != "sft":
        return table
    return {**{k: v for k, v in table.items() if k not in GRPO_ONLY_CHANGES}, **(SFT_CHANGES_1 if v1 else SFT_CHANGES_0_18)}


def _json_default(value: Any) -> Any:
    """A JSON-safe default, or a marker that there is none worth writing."""
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and value != value:  # NaN
            return _NO_DEFAULT
        return value
    if isinstance(value, (list, tuple)):
        items = [_json_default(v) for v in value]
        return _NO_DEFAULT if any(i is _NO_DEFAULT for i in items) else items
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            j = _json_default(v)
            if j is _NO_DEFAULT:
                return _NO_DEFAULT
            out[str(k)] = j
        return out
    return _NO_DEFAULT


_NO_DEFAULT = object()


try:
    from types import UnionType as _UnionType
except ImportError:  # pragma: no cover - Python < 3.10
    _UnionType = None  # type: ignore[assignment,misc]


def _type_schema(tp: Any) -> dict[str, Any]:
    """JSON Schema for a dataclass field annotation (as HfArgumentParser understands it)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    # `int | None` (PEP 604, how TRL 1.x and transformers 5 annotate) is typing.Union[int, None].
    if origin is typing.Union or (_UnionType is not None and isinstance(tp, _UnionType)):
        parts = [_type_schema(a) for a in args]
        types: list[str] = []
        enum_values: Optional[list] = None
        items = None
        for p in parts:
            for t in p.get("type", []) if isinstance(p.get("type"), list) else [p.get("type")]:
                if t and t not in types:
                    types.append(t)
            if "enum" in p:
                enum_values = p["enum"]
            if "items" in p and items is None:
                items = p["items"]
        out: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
        if enum_values is not None:
            # Union[SomeEnum, str] is how transformers spells "one of these strings".
            out["enum"] = enum_values + ([None] if "null" in types else [])
        if items is not None:
            out["items"] = items
        return out
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if origin is typing.Literal:
        return {"type": "string", "enum": list(args)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if origin in (list, tuple) or tp in (list, tuple):
        item = _type_schema(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin is dict or tp is dict:
        return {"type": "object"}
    return {}


def _field_schema(f: dataclasses.Field, hints: dict[str, Any], source: str, range_key: str) -> dict[str, Any]:
    tp = hints.get(f.name, f.type)
    s = _type_schema(tp)
    meta = f.metadata or {}
    choices = meta.get("choices")
    if choices is not None:
        values = list(choices)
        s["enum"] = values + ([None] if (s.get("type") == "null" or "null" in (s.get("type") or [])) else [])
    if f.default is not dataclasses.MISSING:
        d = _json_default(f.default)
        if d is not _NO_DEFAULT:
            s["default"] = d
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        d = _json_default(f.default_factory())  # type: ignore[misc]
        if d is not _NO_DEFAULT:
            s["default"] = d
    help_text = meta.get("help")
    if help_text:
        s["description"] = " ".join(str(help_text).split())
    bounds = RANGES.get(range_key)
    if bounds:
        for k, v in bounds.items():
            if k != "x-source":
                s[k] = v
    s["x-source"] = source
    return s


def _section_classes() -> dict[str, type]:
    from conscience.recipe import SECTION_DATACLASSES

    sections = dict(SECTION_DATACLASSES)
    try:
        from conscience.allocator.policy import AllocatorConfig

        sections.setdefault("allocator", AllocatorConfig)
    except Exception:  # noqa: BLE001 - allocator package optional
        pass
    return sections


def _reward_names() -> list[str]:
    from conscience.rewards import reward_names

    return list(reward_names())


# Values accelerate's DeepSpeed plugin accepts for the offload devices and ZeRO stage.
DEEPSPEED_CHOICES: dict[str, list[Any]] = {
    "zero_stage": [0, 1, 2, 3],
    "offload_optimizer_device": ["none", "cpu", "nvme"],
    "offload_param_device": ["none", "cpu", "nvme"],
    "deepspeed_multinode_launcher": ["pdsh", "standard", "openmpi", "mvapich", "mpich", "nossh"],
}


def accelerate_metadata() -> dict[str, Any]:
    """The accelerate config file format (ClusterConfig) and launch's DeepSpeed options."""
    import accelerate
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils import ComputeEnvironment, DistributedType, PrecisionType

    hints = typing.get_type_hints(ClusterConfig)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(ClusterConfig):
        s = _type_schema(hints.get(f.name, f.type))
        if f.default is not dataclasses.MISSING:
            d = _json_default(f.default)
            if d is not _NO_DEFAULT:
                s["default"] = d
        fields[f.name] = s
    # BaseConfig.process_config fills every other missing key; it raises only for this one.
    fields["distributed_type"] = {"type": "string", "enum": [d.value for d in DistributedType], "required": True}
    fields["compute_environment"]["default"] = ComputeEnvironment.LOCAL_MACHINE.value
    fields["mixed_precision"] = {"type": ["string", "null"], "enum": [p.value for p in PrecisionType] + [None], "default": None}
    fields["use_cpu"]["default"] = False
    fields["debug"]["default"] = False
    ds_keys: dict[str, Any] = {}
    parser = launch_command_parser()
    for group in parser._action_groups:  # noqa: SLF001 - argparse has no public accessor
        if "DeepSpeed" not in (group.title or ""):
            continue
        for action in group._group_actions:  # noqa: SLF001
            t = {int: "integer", float: "number"}.get(action.type, "string")
            entry: dict[str, Any] = {"type": t, "description": " ".join((action.help or "").split())}
            if action.dest in ("zero3_init_flag", "zero3_save_16bit_model"):
                entry["type"] = "boolean"
            if action.dest in DEEPSPEED_CHOICES:
                entry["enum"] = DEEPSPEED_CHOICES[action.dest]
            ds_keys[action.dest] = entry
    return {
        "accelerate_version": accelerate.__version__,
        "fields": fields,
        "distributed_types": [d.value for d in DistributedType],
        "mixed_precision": [p.value for p in PrecisionType],
        "compute_environments": [c.value for c in ComputeEnvironment],
        "deepspeed_config": ds_keys,
        # Old spellings BaseConfig.process_config still converts.
        "legacy_keys": ["fp16", "dynamo_backend"],
    }


# Flat keys whose annotation leaves out None although the class reads None as its default: the
# schema adds "null" (the loader takes it, conscience.recipe.check_flat_values refuses null only
# for a list key that cannot use it, such as `include_for_metrics`).
NULL_AS_DEFAULT: dict[str, str] = {
    "debug": "TrainingArguments.__post_init__ reads None as [] (no debug options)",
}


def build_schema(kind: str = "grpo") -> dict[str, Any]:
    """The schema of a `kind: grpo` recipe (the default) or of a `kind: sft` recipe."""
    import transformers
    import trl

    from conscience.recipe import BOOL_AS_TEXT, LIST_OR_STRING, SECTION_NAMES, recipe_dataclasses

    if kind == "sft":
        from conscience.sft import sft_dataclasses

        flat_classes = sft_dataclasses()
    else:
        flat_classes = recipe_dataclasses()
    properties: dict[str, Any] = {}
    for cls in flat_classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init or f.name.startswith("_") or f.name in properties:
                continue  # TrlParser: the first dataclass that declares a key gets it
            source = cls.__name__
            # Say where TrainingArguments fields come from, even though GRPOConfig carries them.
            owner = next((c for c in cls.__mro__ if f.name in getattr(c, "__annotations__", {})), cls)
            if owner is not cls:
                source = f"{cls.__name__} ({owner.__name__})"
            s = _field_schema(f, hints, source, f.name)
            if f.name in LIST_OR_STRING and "string" not in (s.get("type") or []):
                # one string is a value of its own here (see LIST_OR_STRING), not a list written wrong
                types = s["type"] if isinstance(s.get("type"), list) else [s.get("type")]
                s["type"] = [t for t in types if t != "null"] + ["string"] + (["null"] if "null" in types else [])
                s["x-list-or-string"] = LIST_OR_STRING[f.name]
            if f.name in BOOL_AS_TEXT and "boolean" not in (s.get("type") or []):
                # text that the run also takes as true/false (recipe.BOOL_AS_TEXT): `scale_rewards: false`
                types = s["type"] if isinstance(s.get("type"), list) else [s.get("type")] if s.get("type") else []
                s["type"] = [t for t in types if t != "null"] + ["boolean"] + (["null"] if "null" in types else [])
                if all(v in (False, None) for v in s.get("enum") or ["text"]):
                    del s["enum"]  # `str | None | Literal[False]`: any text, not only false
                s["x-accepts-bool"] = True
            if f.name in NULL_AS_DEFAULT and isinstance(s.get("type"), list) and "null" not in s["type"]:
                s["type"] = s["type"] + ["null"]
                s["x-null-as-default"] = NULL_AS_DEFAULT[f.name]
            properties[f.name] = s

    sections: dict[str, Any] = {}
    for name, cls in sorted(_section_classes().items()):
        hints = typing.get_type_hints(cls)
        props = {
            f.name: _field_schema(f, hints, cls.__name__, qualified_range_key(cls, f.name))
            for f in dataclasses.fields(cls)
            if f.init and not f.name.startswith("_")
        }
        doc = " ".join((cls.__doc__ or "").split())
        sections[name] = {"type": ["object", "null"], "description": doc, "properties": props, "additionalProperties": False, "x-source": cls.__name__}
    for name in SECTION_NAMES:
        sections.setdefault(name, {"type": ["object", "null"], "description": f"The `{name}:` section."})
    properties.update(sections)
    from conscience.recipe import DEFAULT_KIND, RECIPE_KINDS

    properties["kind"] = {
        "type": "string",
        "enum": list(RECIPE_KINDS),
        "default": DEFAULT_KIND,
        "description": "What this recipe runs: `grpo` (GRPO training, conscience.train), `sft` (supervised warm start, "
        "conscience.sft) or `eval` (evaluate a policy, conscience.eval). The launcher starts the matching runtime module.",
        "x-source": "conscience",
    }
    properties["env"] = {
        "type": "object",
        "description": "Environment variables set before training (TrlParser: `env` must be a dict).",
        "additionalProperties": {"type": ["string", "number", "boolean"]},
        "x-source": "TrlParser",
    }

    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "Chain of Conscience SFT recipe" if kind == "sft" else "Chain of Conscience GRPO recipe",
        "description": f"Flat TRL {trl.__version__} {'SFTConfig' if kind == 'sft' else 'GRPOConfig'}/ModelConfig keys and our script arguments, plus the launch:, safety: and allocator: sections. Generated by `python -m conscience.schema{' --kind sft' if kind == 'sft' else ''}`; do not edit.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "x-conscience": {
            "generator": "python -m conscience.schema" + (" --kind sft" if kind == "sft" else ""),
            "kind": kind,
            "trl_version": trl.__version__,
            "transformers_version": transformers.__version__,
            "sections": sorted(sections),
            "reward_names": _reward_names(),
            "changed_fields": changed_fields(trl.__version__, kind),
            "accelerate": accelerate_metadata(),
        },
    }


def render(kind: str = "grpo") -> str:
    return json.dumps(build_schema(kind), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conscience.schema", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="write the schema to this file instead of stdout")
    p.add_argument("--kind", choices=["grpo", "sft"], default="grpo", help="the recipe kind (default grpo)")
    args = p.parse_args(argv)
    text = render(args.kind)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
