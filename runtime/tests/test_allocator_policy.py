"""The budget policy's tier table, boundaries included, and the recipe section's validation."""
import json

import pytest

from conscience.allocator.policy import AllocatorConfig, decide, load_config

CFG = AllocatorConfig()  # 0.5 / 0.75 / 0.1 / 0.2 ; 0 / 64 / 192 / 512


@pytest.mark.parametrize(
    "risk, ambiguity, tier, budget",
    [
        (0.00, 0.00, "none", 0),
        (0.099, 0.199, "none", 0),            # just below both row-3 thresholds
        (0.10, 0.00, "standard", 192),        # risk_standard is inclusive
        (0.00, 0.20, "standard", 192),        # ambiguity_standard is inclusive
        (0.30, 0.499, "standard", 192),       # below ambiguity_deep, below risk_harmful
        (0.05, 0.50, "deep", 512),            # ambiguity_deep is inclusive
        (0.99, 0.50, "deep", 512),            # row 1 wins over row 2: looks harmful but ambiguous
        (0.75, 0.499, "brief", 64),           # risk_harmful is inclusive
        (0.749, 0.499, "standard", 192),      # just below risk_harmful
        (1.00, 0.00, "brief", 64),
    ],
)
def test_tier_table(risk, ambiguity, tier, budget):
    assert decide(risk, ambiguity, CFG) == (tier, budget)


@pytest.mark.parametrize(
    "risk, ambiguity, tier",
    [(0.0, 0.0, "standard"), (0.099, 0.199, "standard"), (0.75, 0.0, "brief"), (0.05, 0.5, "deep")],
)
def test_unfamiliar_script_lifts_none_to_standard(risk, ambiguity, tier):
    assert decide(risk, ambiguity, CFG, unfamiliar=True) == (tier, getattr(CFG, f"budget_{tier}"))


def test_overrides_move_boundaries_and_budgets():
    cfg = AllocatorConfig.from_mapping({"ambiguity_deep": 0.9, "budget_deep": 1024, "budget_brief": 16}, CFG)
    assert decide(0.05, 0.6, cfg) == ("standard", 192)
    assert decide(0.05, 0.95, cfg) == ("deep", 1024)
    assert decide(0.95, 0.1, cfg) == ("brief", 16)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"risk_harmfull": 0.5}, "unknown allocator setting 'risk_harmfull'"),
        ({"risk_harmful": 1.5}, "risk_harmful must be a number in"),
        ({"ambiguity_deep": "high"}, "ambiguity_deep must be a number"),
        ({"budget_deep": -1}, "budget_deep must be a non-negative integer"),
        ({"budget_brief": 3.5}, "budget_brief must be a non-negative integer"),
        ({"budget_none": True}, "budget_none must be a non-negative integer"),
        ({"enabled": "false"}, "enabled must be true or false"),
        ({"enabled": 0}, "enabled must be true or false"),
    ],
)
def test_bad_settings_name_the_key(bad, match):
    with pytest.raises(ValueError, match=match):
        AllocatorConfig.from_mapping(bad, CFG)


def test_every_field_has_help_for_the_recipe_schema():
    import dataclasses

    for f in dataclasses.fields(AllocatorConfig):
        assert f.metadata.get("help"), f"{f.name} has no help string"


def test_model_policy_then_recipe_overrides(tmp_path):
    (tmp_path / "allocator.json").write_text(json.dumps({"policy": {"risk_harmful": 0.6, "budget_deep": 300}}))
    cfg = load_config({"model": str(tmp_path), "budget_deep": 400})
    assert cfg.risk_harmful == 0.6          # from the model's allocator.json
    assert cfg.budget_deep == 400           # the recipe wins
    assert cfg.budget_brief == 64           # dataclass default
    assert decide(0.65, 0.3, cfg) == ("brief", 64)


def test_a_config_object_changes_only_what_it_sets(tmp_path):
    """AllocatorConfig(budget_deep=768) keeps the model's fitted thresholds: only the fields that
    differ from the defaults override allocator.json (before, the object replaced all of it)."""
    (tmp_path / "allocator.json").write_text(json.dumps({"policy": {"risk_harmful": 0.6, "ambiguity_deep": 0.9}}))
    cfg = load_config(AllocatorConfig(model=str(tmp_path), budget_deep=768))
    assert (cfg.risk_harmful, cfg.ambiguity_deep, cfg.budget_deep, cfg.budget_brief) == (0.6, 0.9, 768, 64)
    assert decide(0.65, 0.6, cfg) == ("brief", 64)  # ambiguity 0.6 is deep under the defaults, not under the model's 0.9


@pytest.mark.parametrize("text, why", [
    ("{not json", "not valid JSON"),
    ("[1]", "not a JSON object"),
    ('{"policy": [1, 2]}', '"policy" must be an object'),
    ('{"policy": {"risk_harmful": 7}}', "policy: allocator.risk_harmful must be a number"),
])
def test_a_malformed_allocator_json_is_an_error_naming_it(tmp_path, text, why):
    (tmp_path / "allocator.json").write_text(text)
    with pytest.raises(ValueError, match=why) as e:
        load_config({"model": str(tmp_path)})
    assert str(tmp_path / "allocator.json") in str(e.value)


@pytest.mark.parametrize("bad", [5, ["models/allocator"], {"dir": "x"}, True])
def test_a_model_that_is_not_a_string_is_an_error_naming_the_key(bad):
    """`score --policy '{"model": 5}'` said "expected str, bytes or os.PathLike object, not int"
    (a TypeError from Path(5) before the section was checked); TypeScript's parsePolicy says the same as this."""
    with pytest.raises(ValueError, match=r"allocator\.model must be a string path, got "):
        load_config({"model": bad})


@pytest.mark.parametrize("overrides", [{"budget_deep": 768.0}, {"budget_deep": 1e3}, {"budget_none": 0.0}])
def test_a_budget_written_as_a_float_is_refused(overrides, tmp_path):
    """The rule both sides keep (TypeScript's FloatLiteral): a whole number written as a float is a
    float here and refused as a budget, from the overrides and from allocator.json alike."""
    with pytest.raises(ValueError, match="must be a non-negative integer, got "):
        load_config(overrides)
    (tmp_path / "allocator.json").write_text('{"policy": {"budget_deep": 768.0}}')
    with pytest.raises(ValueError, match="budget_deep must be a non-negative integer, got 768.0"):
        load_config({"model": str(tmp_path)})
