"""The budget policy: (risk, ambiguity) -> tier and token budget.

The defaults live in ``models/allocator/allocator.json`` under ``"policy"`` (same keys as
:class:`AllocatorConfig` minus ``model``), the recipe's ``allocator:`` section overrides
them, and the TypeScript side (extension/src/core/allocator) mirrors :func:`decide`.
The decision table is documented in docs/allocator.md; keep the three in step.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

TIERS = ("none", "brief", "standard", "deep")

# Repository layout: runtime/conscience/allocator/policy.py -> <repo>/models/allocator
_REPO_MODEL = Path(__file__).resolve().parents[3] / "models" / "allocator"


def default_model_dir() -> Path:
    """Where the shipped allocator lives ($CONSCIENCE_ALLOCATOR_MODEL wins)."""
    env = os.environ.get("CONSCIENCE_ALLOCATOR_MODEL")
    return Path(env) if env else _REPO_MODEL


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class AllocatorConfig:
    """The recipe's ``allocator:`` section. Every field is optional: a key the section leaves out
    takes the model's value from its allocator.json ``policy`` (the shipped model's thresholds
    are fitted there and differ from the defaults below), and what allocator.json leaves out
    takes the default below. See :func:`load_config`."""

    enabled: bool = _f(True, "Fill missing per-prompt `budget` fields with the allocator before training.")
    model: str = _f("", "Folder holding model.onnx, tokenizer.json and allocator.json; empty = the shipped default allocator (models/allocator).")
    risk_harmful: float = _f(0.75, "Risk at or above which a prompt counts as clearly harmful and gets the `brief` tier (unless ambiguity sends it to `deep` first).")
    ambiguity_deep: float = _f(0.5, "Ambiguity at or above which a prompt gets the `deep` tier (looks risky but may be benign). Checked first.")
    risk_standard: float = _f(0.1, "Risk at or above which a prompt gets at least the `standard` tier.")
    ambiguity_standard: float = _f(0.2, "Ambiguity at or above which a prompt gets at least the `standard` tier.")
    budget_none: int = _f(0, "Safety-reasoning token budget of the `none` tier (clearly benign prompts).")
    budget_brief: int = _f(64, "Token budget of the `brief` tier (clearly harmful prompts: a short, firm refusal rationale).")
    budget_standard: int = _f(192, "Token budget of the `standard` tier (some risk signal).")
    budget_deep: int = _f(512, "Token budget of the `deep` tier (ambiguous prompts that look risky but may be benign).")

    def __post_init__(self) -> None:
        for name in ("risk_harmful", "ambiguity_deep", "risk_standard", "ambiguity_standard"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"allocator.{name} must be a number in [0, 1], got {v!r}")
            setattr(self, name, float(v))
        for t in TIERS:
            name = f"budget_{t}"
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"allocator.{name} must be a non-negative integer, got {v!r}")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"allocator.enabled must be true or false, got {self.enabled!r}")
        if not isinstance(self.model, str):
            raise ValueError(f"allocator.model must be a string path, got {self.model!r}")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, base: "AllocatorConfig | None" = None) -> "AllocatorConfig":
        """Overlay ``data`` (a recipe section or allocator.json's policy) on ``base``.
        Unknown keys are an error naming the key."""
        values = dataclasses.asdict(base) if base is not None else {}
        known = {f.name for f in fields(cls)}
        for k, v in (data or {}).items():
            if k not in known:
                raise ValueError(f"unknown allocator setting {k!r}; known: {', '.join(sorted(known))}")
            values[k] = v
        return cls(**values)

    def model_dir(self) -> Path:
        return Path(self.model) if self.model else default_model_dir()

    def budgets(self) -> dict[str, int]:
        return {t: getattr(self, f"budget_{t}") for t in TIERS}

    def policy_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("model"), d.pop("enabled")
        return d


def read_allocator_json(path: Path) -> dict[str, Any]:
    """A model folder's allocator.json as a dict; ValueError naming the file otherwise."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a JSON object")
    return meta


def load_config(allocator_cfg: Mapping[str, Any] | AllocatorConfig | None = None) -> AllocatorConfig:
    """Overrides on top of the model's allocator.json policy, on top of the defaults. The
    overrides are a recipe's ``allocator:`` mapping, or an AllocatorConfig whose fields that
    differ from the class defaults count as set (``AllocatorConfig(budget_deep=768)`` keeps the
    model's fitted thresholds and changes one budget). A malformed allocator.json is a
    ValueError naming it."""
    if isinstance(allocator_cfg, AllocatorConfig):
        defaults = dataclasses.asdict(AllocatorConfig())
        overrides: dict[str, Any] = {k: v for k, v in dataclasses.asdict(allocator_cfg).items() if v != defaults[k]}
    else:
        overrides = dict(allocator_cfg or {})
    if "model" in overrides and not isinstance(overrides["model"], str):
        # checked before it names a folder: Path(5) is a TypeError that names no setting
        raise ValueError(f"allocator.model must be a string path, got {overrides['model']!r}")
    model_dir = Path(overrides["model"]) if overrides.get("model") else default_model_dir()
    base = AllocatorConfig(model=str(model_dir))
    meta_path = model_dir / "allocator.json"
    if meta_path.is_file():
        policy = read_allocator_json(meta_path).get("policy", {})
        if not isinstance(policy, dict):
            raise ValueError(f"{meta_path}: \"policy\" must be an object")
        try:
            base = AllocatorConfig.from_mapping(policy, base)
        except ValueError as e:
            raise ValueError(f"{meta_path}: policy: {e}") from None
    return AllocatorConfig.from_mapping(overrides, base)


def decide(risk: float, ambiguity: float, cfg: AllocatorConfig | None = None, unfamiliar: bool = False) -> tuple[str, int]:
    """First matching row wins (docs/allocator.md, "Budget policy"):

    1. ambiguity >= ambiguity_deep                          -> deep
    2. risk >= risk_harmful                                 -> brief
    3. risk >= risk_standard or ambiguity >= ambiguity_standard -> standard
    4. unfamiliar (written in a script the model did not learn both labels in: unfamiliar.py) -> standard
    5. otherwise                                            -> none
    """
    cfg = cfg or AllocatorConfig()
    if ambiguity >= cfg.ambiguity_deep:
        tier = "deep"
    elif risk >= cfg.risk_harmful:
        tier = "brief"
    elif risk >= cfg.risk_standard or ambiguity >= cfg.ambiguity_standard or unfamiliar:
        tier = "standard"
    else:
        tier = "none"
    return tier, getattr(cfg, f"budget_{tier}")
