"""The one place that knows how TRL's API differs between the two supported lines.

* TRL 0.18.2 with transformers 4.52 (open-r1's stack, requirements/cpu.txt and gpu.txt)
* TRL 1.x with transformers 5.x (the current stack, requirements/cpu-current.txt and gpu-current.txt)

Everything else in the runtime (trainer, rewards, events, resume) is written once against what
this module returns. When a third line comes, add it here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Optional


def trl_version() -> str:
    import trl

    return trl.__version__


def trl_major(version: Optional[str] = None) -> int:
    """0 for the 0.x line, 1 for 1.x, ..."""
    v = version if version is not None else trl_version()
    try:
        return int(str(v).split(".")[0])
    except ValueError:
        return 0


def is_trl1(version: Optional[str] = None) -> bool:
    return trl_major(version) >= 1


def model_dtype(model_args: Any) -> Optional[str]:
    """The dtype a recipe asked for: ModelConfig.torch_dtype in 0.18, ModelConfig.dtype in 1.x."""
    if hasattr(model_args, "dtype"):
        return getattr(model_args, "dtype")
    return getattr(model_args, "torch_dtype", None)


def trust_remote_code(model_args: Any, training_args: Any = None) -> bool:
    """`trust_remote_code`: a ModelConfig key in 0.18, a GRPOConfig (training) key in 1.x."""
    if hasattr(model_args, "trust_remote_code"):
        return bool(model_args.trust_remote_code)
    return bool(getattr(training_args, "trust_remote_code", False))


def model_init_kwargs(model_args: Any, training_args: Any = None) -> dict[str, Any]:
    """GRPOConfig.model_init_kwargs built from ModelConfig's keys, spelled as the installed
    transformers' `from_pretrained` wants them (`torch_dtype` in 4.x, `dtype` in 5.x)."""
    import transformers

    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return {
        "revision": model_args.model_revision,
        "trust_remote_code": trust_remote_code(model_args, training_args),
        "attn_implementation": model_args.attn_implementation,
        dtype_key: model_dtype(model_args),
    }


def line_mismatch(recipe_trl: Optional[str], installed: Optional[str] = None) -> Optional[str]:
    """A warning when a recipe says it is written for another TRL line than the installed one."""
    if not recipe_trl:
        return None
    have = installed if installed is not None else trl_version()
    if trl_major(recipe_trl) == trl_major(have) and (trl_major(have) >= 1 or str(recipe_trl).split(".")[:2] == have.split(".")[:2]):
        return None
    return (
        f"the recipe says launch.trl: {recipe_trl}, but this environment runs TRL {have}; keys and checks "
        f"differ between the lines (see docs/recipes.md), so install the recipe's TRL or set launch.trl: {have}"
    )


def allow_indexed_cpu_map_location() -> None:
    """Let torch.load restore storages to a `cpu:N` location, as it restores them to `cpu`.

    transformers' Trainer maps a checkpoint's optimizer state to `args.device` when there are
    several processes, which is `cpu:0` in CPU multi-process training; torch 2.13's CPU
    deserializer matches only `cpu`, so resuming such a run failed with "don't know how to
    restore data location of torch.storage.UntypedStorage (tagged with cpu:0)". Registered once
    per process; other locations are left to torch.
    """
    import re

    import torch.serialization as ser

    if getattr(ser, "_conscience_indexed_cpu", False):
        return

    def tagger(obj: Any) -> None:
        return None  # never tags: saving is unchanged

    def deserializer(storage: Any, location: Any) -> Any:
        if isinstance(location, str) and re.fullmatch(r"cpu:\d+", location):
            return storage  # storages are read on the CPU already
        return None

    ser.register_package(100, tagger, deserializer)
    ser._conscience_indexed_cpu = True
