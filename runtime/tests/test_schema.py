"""The generated recipe schemas: what they say about values the runtime reads (conscience.schema)."""

import dataclasses

from conscience import eval as ev
from conscience import schema
from conscience.recipe import LaunchConfig, SafetyConfig


def test_sft_recipes_get_sft_changes_per_line_and_no_grpo_only_fields():
    old, new = schema.changed_fields("0.18.2", "sft"), schema.changed_fields("1.16.0", "sft")
    assert old["max_seq_length"]["status"] == "future" and old["max_seq_length"]["replacement"] == "max_length"
    assert new["max_seq_length"]["status"] == "removed" and new["max_seq_length"]["replacement"] == "max_length"
    assert new["torch_dtype"]["replacement"] == "dtype" and new["warmup_ratio"]["replacement"] == "warmup_steps"
    for name in ("vllm_device", "max_prompt_length", "use_liger_loss", "num_generations_eval"):
        assert name not in old and name not in new, name
    # a GRPO recipe's tables are as they were
    assert schema.changed_fields("1.16.0") is schema.CHANGED_FIELDS_1
    assert "max_seq_length" not in schema.changed_fields("1.16.0", "grpo")


def test_eval_schema_bounds_are_the_qualified_entries_of_each_dataclass():
    """Every eval-recipe key with a bound carries its own dataclass's (`eval.temperature` >= 0,
    which 0 = greedy needs), never the GRPO bound of the same bare name (temperature > 0)."""
    s = ev.build_schema()["properties"]
    checked = 0
    for cls, props in ((ev.EvalConfig, s), (ev.EndpointConfig, s["endpoint"]["properties"]),
                       (ev.JudgeConfig, s["judge"]["properties"]), (SafetyConfig, s["safety"]["properties"]),
                       (LaunchConfig, s["launch"]["properties"])):
        for f in dataclasses.fields(cls):
            want = {k: v for k, v in schema.RANGES.get(schema.qualified_range_key(cls, f.name), {}).items() if not k.startswith("x-")}
            got = {k: v for k, v in props[f.name].items() if k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")}
            assert got == want, (cls.__name__, f.name, got, want)
            checked += bool(want)
    assert checked >= 15
    assert s["temperature"]["minimum"] == 0 and "exclusiveMinimum" not in s["temperature"]


def test_only_max_grad_norm_may_be_infinite_and_list_keys_that_take_one_string_say_so():
    rec = schema.build_schema("grpo")["properties"]
    assert rec["max_grad_norm"].get("x-allow-infinity") is True
    assert [k for k, r in schema.RANGES.items() if r.get("x-allow-infinity")] == ["max_grad_norm"]
    assert schema.bound_words("learning_rate") == ">= 0" and schema.bound_words("top_p") == "> 0 and <= 1"
    assert schema.bound_words("report_to") is None
    for key in ("reward_funcs", "lora_target_modules"):
        assert "string" in rec[key]["type"] and "array" in rec[key]["type"], rec[key]
    for key in ("label_names", "reward_weights", "lora_modules_to_save"):
        assert "string" not in rec[key]["type"], rec[key]
