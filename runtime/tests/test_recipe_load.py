"""Recipe mistakes the loader passed on (or failed on with a traceback) and the trainer failed on,
or trained wrongly with, after the model was loaded: each is refused by load_recipe with
FILE:LINE and the validator's wording, where the validator has one."""

import json
import os
import subprocess
import sys

import pytest

from conscience.recipe import RecipeError, load_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "runtime"))
TRL018 = __import__("trl").__version__.startswith("0.")
CPU = ["--use_cpu", "true"]  # TRL 1.x trains in bf16 by default, which this CPU refuses


def _write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _refused(tmp_path, text, line, needle, name="r.yaml"):
    """load_recipe refuses `text` with an error that starts FILE:LINE and holds `needle`."""
    p = _write(tmp_path, text, name)
    with pytest.raises(RecipeError) as e:
        load_recipe(p, CPU + ["--output_dir", str(tmp_path / "out")])
    assert str(e.value).startswith(f"{p}:{line}: ") and needle in str(e.value), str(e.value)
    return str(e.value)


def _loads(tmp_path, text, name="ok.yaml"):
    return load_recipe(_write(tmp_path, text, name), CPU + ["--output_dir", str(tmp_path / "out")])


# 1. values inside lists and mappings: GRPOTrainer got the string "2e-1" (YAML 1.1 reads it as text),
# NaN advantages from .nan, and the scheduler failed on min_lr "1e-6", all after the model loaded
@pytest.mark.parametrize("body, line, needle", [
    ("reward_funcs: [refusal, safety_format]\nreward_weights:\n  - 1.0\n  - 2e-1\n", 6,
     'reward_weights[1] expects a number, got the string "2e-1". YAML 1.1 (PyYAML) reads 2e-1 as text; write it as 2.0e-1.'),
    ("reward_funcs: [refusal, safety_format]\nreward_weights: [1.0, \"1.0\"]\n", 4, 'reward_weights[1] expects a number, got the string "1.0".'),
    ("reward_funcs: [refusal, safety_format]\nreward_weights:\n  - .nan\n  - 1.0\n", 5, "reward_weights[0] = .nan is not a finite number"),
    ("reward_funcs: [refusal, safety_format]\nreward_weights: [1.0, .inf]\n", 4, "reward_weights[1] = .inf is not a finite number"),
    ("reward_funcs: [refusal, safety_format]\nreward_weights: [1, null]\n", 4, "reward_weights[1] expects a number, got null (null)."),
    ("reward_funcs: [refusal, safety_format]\nreward_weights: [[1.0], 1.0]\n", 4, "reward_weights[0] expects a number, got a list."),
    ("reward_funcs: [refusal, safety_format]\nreward_weights: [1.0, yes]\n", 4, "reward_weights[1] expects a number, got true (YAML 1.1 reads `yes` as a boolean)"),
    ("reward_funcs: {refusal: 1.0}\n", 3, "reward_funcs expects a list or a string, got a mapping."),
    ("reward_funcs:\n  - refusal\n  - 5\n", 5, "reward_funcs[1] expects a string, got the number 5. Quote it if it is meant as text: '5'."),
    ("lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr: 1e-6\n", 5,
     'lr_scheduler_kwargs.min_lr expects a number, got the string "1e-6". YAML 1.1 (PyYAML) reads 1e-6 as text; write it as 1.0e-6.'),
])
def test_a_bad_value_inside_a_list_or_mapping_is_refused_at_its_own_line(tmp_path, body, line, needle):
    _refused(tmp_path, BASE + body, line, needle)


# A number PyYAML reads as text, anywhere in a flat key's mapping (lists included): `1.0e8` (a dot
# but an unsigned exponent) used to pass load and fail in transformers with "'>' not supported
# between instances of 'int' and 'str'" and no line, and `1e8`'s advice was `1.0e8`, still text
@pytest.mark.parametrize("body, line, needle", [
    ("fsdp_config:\n  min_num_params: 1.0e8\n", 4,
     'fsdp_config.min_num_params expects a number, got the string "1.0e8". YAML 1.1 (PyYAML) reads 1.0e8 as text; write it as 1.0e+8.'),
    ("fsdp_config: {min_num_params: 1e8}\n", 3,
     'fsdp_config.min_num_params expects a number, got the string "1e8". YAML 1.1 (PyYAML) reads 1e8 as text; write it as 1.0e+8.'),
    ("deepspeed:\n  zero_optimization:\n    stage: 2\n    reduce_bucket_size: 5E8\n", 6,
     'deepspeed.zero_optimization.reduce_bucket_size expects a number, got the string "5E8". YAML 1.1 (PyYAML) reads 5E8 as text; write it as 5.0e+8.'),
    ("lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr_rate:\n    - 1e-1\n", 6,
     'lr_scheduler_kwargs.min_lr_rate[0] expects a number, got the string "1e-1". YAML 1.1 (PyYAML) reads 1e-1 as text; write it as 1.0e-1.'),
    ("model_init_kwargs: {attn_scale: -.5}\n", 3,
     'model_init_kwargs.attn_scale expects a number, got the string "-.5". YAML 1.1 (PyYAML) reads -.5 as text; write it as -0.5.'),
])
def test_a_number_pyyaml_reads_as_text_in_a_mapping_is_refused_with_advice_pyyaml_reads_as_a_number(tmp_path, body, line, needle):
    _refused(tmp_path, BASE + body, line, needle)
    fixed = BASE + body.replace(needle.split("reads ")[1].split(" as text")[0], needle.rsplit("write it as ", 1)[1][:-1])
    _loads(tmp_path, fixed)  # the advice, written in, loads


def test_the_text_number_advice_is_what_pyyaml_reads_as_a_number():
    import yaml

    from conscience.recipe import _yaml11_text_number

    for text in ["1e8", "1E8", "1e+8", "1.0e8", "1.e8", "5e8", "1e-6", "-1e-6", "+2e-1", "-.5", "+.5", ".5e3", "-.5e-3"]:
        assert isinstance(yaml.safe_load(text), str), text
        spelled = _yaml11_text_number(text)
        assert spelled is not None, text
        assert isinstance(yaml.safe_load(spelled), float) and yaml.safe_load(spelled) == float(text), (text, spelled)
    for text in ["1.0e+8", "1.0e-6", "0.5", ".5", "1.", "100", "-3", "1_000", "0x10", "inf", ".inf", "12:30", "abc", "1e", "e8"]:
        assert _yaml11_text_number(text) is None, text


def test_numbers_inside_lists_and_mappings_written_as_numbers_load(tmp_path):
    r = _loads(tmp_path, BASE + "reward_funcs: [refusal, safety_format]\nreward_weights: [1, 2.0e-1]\n"
                               "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1.0e-6}\n"
                               "model_init_kwargs: {revision: '1e-6'}\n")
    assert r.training_args.reward_weights == [1, 0.2]
    assert r.training_args.lr_scheduler_kwargs == {"min_lr": 1e-6}
    assert r.training_args.model_init_kwargs == {"revision": "1e-6"}  # quoted: text on purpose


# 3. a key given twice: PyYAML kept the last one silently
@pytest.mark.parametrize("text, line, needle", [
    (BASE + "learning_rate: 1.0e-4\nmax_steps: 4\nlearning_rate: 1.0e-5\n", 5,
     "Duplicate key 'learning_rate' (first defined on line 3). PyYAML silently keeps the last value; remove one of them."),
    (BASE + "safety:\n  budget_harmful: 12\n  budget_benign: 0\n  budget_harmful: 24\n", 6,
     "Duplicate key 'budget_harmful' (first defined on line 4)"),
])
def test_a_duplicate_key_is_refused_at_its_second_line(tmp_path, text, line, needle):
    _refused(tmp_path, text, line, needle)


def test_a_merge_key_overriding_a_key_is_not_a_duplicate_and_errors_name_the_merged_line(tmp_path):
    r = _loads(tmp_path, "launch: &l\n  cpu: true\n  num_processes: 1\n" + BASE
               + "safety:\n  <<: {budget_harmful: 10, budget_benign: 0}\n  budget_harmful: 20\n")
    assert r.safety.budget_harmful == 20 and r.safety.budget_benign == 0
    # a key that comes from a merge is reported at the line that gives it, not "line ?"
    _refused(tmp_path, BASE + "<<: {learning_rate: 1.0e-5,\n  num_generatons: 4}\n", 4, "num_generatons (line 4)")
    _refused(tmp_path, BASE + "safety:\n  <<:\n    budget_harmful: 10\n    budget_mode: maxx\n", 6,
             "safety.budget_mode must be exact or max, got 'maxx'")


# Merge order is the YAML merge spec's (the validator's, docs/recipes.md), whatever the PyYAML version:
# PyYAML 6.0.4's own flatten_mapping let the *later* source win for most key names, so a recipe the
# validator passed trained with the other source's values, and errors named the other source's line
def test_merge_sources_earlier_win_over_later_and_the_mapping_over_both(tmp_path):
    env = "env:\n  A: &a {learning_rate: 1.0e-6, beta: 0.04}\n  B: &b {learning_rate: 0.5, beta: 0.0, seed: 7}\n"
    for merge in ("<<: [*a, *b]\n", "<<: *a\n<<: *b\n"):
        r = _loads(tmp_path, BASE + "reward_funcs: [refusal]\n" + env + merge)
        assert (r.training_args.learning_rate, r.training_args.beta, r.training_args.seed) == (1e-6, 0.04, 7), merge
    r = _loads(tmp_path, BASE + "reward_funcs: [refusal]\n" + env + "<<: [*b, *a]\n")
    assert (r.training_args.learning_rate, r.training_args.beta) == (0.5, 0.0)
    r = _loads(tmp_path, BASE + "reward_funcs: [refusal]\n" + env + "<<: [*a, *b]\nbeta: 0.1\n")
    assert (r.training_args.learning_rate, r.training_args.beta) == (1e-6, 0.1)
    # the value that is used is the one whose line an error names
    src = "env:\n  A: &a {budget_harmful: 5}\n  B: &b {budget_harmful: -3}\n"
    _loads(tmp_path, BASE + src + "safety: {<<: [*a, *b]}\n")
    _refused(tmp_path, BASE + src + "safety: {<<: [*b, *a]}\n", 5, "safety.budget_harmful = -3 is out of range")
    _refused(tmp_path, BASE + src + "safety:\n  <<: *b\n  <<: *a\n", 5, "safety.budget_harmful = -3 is out of range")


def test_merges_of_merges_stay_small(tmp_path):
    # each level merges the one below twice: without taking a key once, 2**40 pairs
    levels = ["  L0: &l0 {learning_rate: 1.0e-6, beta: 0.04}\n"]
    levels += [f"  L{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}]}}\n" for i in range(1, 41)]
    r = _loads(tmp_path, BASE + "reward_funcs: [refusal]\nenv:\n" + "".join(levels) + "<<: *l40\n")
    assert r.training_args.beta == 0.04


# 4. a float for an integer: passed on, failed mid-run in range()
@pytest.mark.parametrize("body, needle", [
    ("max_steps: 8.0\n", "max_steps expects an integer, got the number 8.0. Write it without a decimal point: 8."),
    ("num_generations: 4.0\n", "num_generations expects an integer or null, got the number 4.0. Write it without a decimal point: 4."),
    ("max_steps: 8.5\n", "max_steps expects an integer, got the number 8.5."),
])
def test_a_float_for_an_integer_key_is_refused(tmp_path, body, needle):
    _refused(tmp_path, BASE + body, 3, needle)


# 7. tracebacks instead of FILE:LINE
@pytest.mark.parametrize("value", ['"--2"', '"²"', '"1_000"', '"+2"'])
def test_an_integer_int_refuses_in_a_section_is_an_error_not_a_traceback(tmp_path, value):
    _refused(tmp_path, BASE + f"launch:\n  num_processes: {value}\n", 4, "launch.num_processes: expected an integer, got")


def test_an_eval_recipes_bad_integer_and_the_launchers_are_errors_not_tracebacks(tmp_path):
    from conscience.eval import EvalError, load_eval_recipe

    p = _write(tmp_path, "kind: eval\nmodel_name_or_path: conscience/tiny\nmax_prompts: \"--24\"\n")
    with pytest.raises(EvalError) as e:
        load_eval_recipe(p)
    assert str(e.value).startswith(f"{p}:3: max_prompts: expected an integer, got '--24'"), str(e.value)
    r = _write(tmp_path, BASE + "launch:\n  num_processes: \"--2\"\n", "l.yaml")
    out = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", r, "--dry-run"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 2 and out.stderr.startswith(f"conscience.launch: {r}:4: launch.num_processes"), out.stderr
    assert "Traceback" not in out.stderr


def test_deeply_nested_yaml_is_an_error_not_a_recursion_error(tmp_path):
    # in a child: the bug ended in RecursionError (or worse, a stack overflow)
    p = _write(tmp_path, "max_steps: 2\nx: " + "[" * 100_000 + "\n")
    code = ("import sys; from conscience.recipe import RecipeError, load_recipe\n"
            "try:\n    load_recipe(sys.argv[1])\nexcept RecipeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, p], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.stdout.strip() == f"{p}:2: invalid YAML: nested more than 64 levels deep", out.stdout + out.stderr[-2000:]


# 5. errors without a line, or misleading
def test_a_value_argparse_cannot_convert_names_its_key_and_line_without_the_usage_text(tmp_path, capfd):
    _refused(tmp_path, BASE + "max_steps: 1e3\n", 3, 'max_steps expects an integer, got the string "1e3". Write it as 1000.')
    _refused(tmp_path, BASE + "learning_rate: 1e-4.5\n", 3, 'learning_rate expects a number, got the string "1e-4.5".')
    _refused(tmp_path, BASE + "lr_scheduler_type: cosine\ngradient_checkpointing: maybe\n", 4,
             'gradient_checkpointing expects true or false, got the string "maybe".')
    # what argparse itself refuses (an override on the command line) is an error, not a usage text and exit 2
    p = _write(tmp_path, BASE + "max_steps: 2\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p, CPU + ["--max_steps", "x"])
    assert str(e.value) == f"{p}: invalid command-line arguments: argument --max_steps/--max-steps: invalid int value: 'x'"
    assert "usage:" not in capfd.readouterr().err
    r = _loads(tmp_path, BASE + "gradient_checkpointing: 'true'\nmax_steps: '3'\nlearning_rate: '1e-5'\n")
    assert r.training_args.gradient_checkpointing is True and r.training_args.max_steps == 3


def test_eval_strategy_no_unquoted_is_refused_as_open_r1_refuses_it_and_quoted_loads(tmp_path):
    # YAML 1.1 reads `no` as false; TrainingArguments (open-r1 reads the YAML the same way) then
    # failed with "False is not a valid IntervalStrategy" and no line
    _refused(tmp_path, BASE + "eval_strategy: no\n", 3,
             "eval_strategy expects a string, got false (YAML 1.1 reads `no` as a boolean). Quote it to keep the text: 'no'.")
    assert _loads(tmp_path, BASE + "eval_strategy: 'no'\n").training_args.eval_strategy == "no"


@pytest.mark.parametrize("body, line, needle", [
    # TRL 0.18: "The effective train batch size (1 x 3 x 1) must be evenly divisible by the number of
    # generations per prompt (4)", no key named; TRL 1.x: "generation_batch_size (3) must be divisible by num_generations (4)"
    ("per_device_train_batch_size: 3\nnum_generations: 4\n", 4, "generations per prompt (4)" if TRL018 else "num_generations (4)"),
    ("per_device_train_batch_size: 0\n", 3, "per_device_train_batch_size = 0 is out of range: it must be >= 1."),
    ("gradient_accumulation_steps: 0\n", 3, "gradient_accumulation_steps = 0 is out of range: it must be >= 1."),
])
def test_batch_size_errors_name_a_line(tmp_path, body, line, needle):
    _refused(tmp_path, BASE + body, line, needle)


def test_a_key_that_is_not_a_name_and_unknown_keys_are_file_line(tmp_path):
    _refused(tmp_path, BASE + "1: x\n", 3, "Unknown key '1': a recipe's keys are names of settings, and YAML reads this one as int")
    _refused(tmp_path, BASE + "max_steps: 2\nnum_generation: 4\nvllm_device: auto\n", 4,
             "unknown keys for TRL ")


def test_a_malformed_deepspeed_json_by_absolute_path_names_the_json_file(tmp_path):
    ds = tmp_path / "elsewhere" / "ds.json"
    ds.parent.mkdir()
    ds.write_text('{"zero_optimization": {"stage": 2},}\n')
    msg = _refused(tmp_path, BASE + f"deepspeed: {ds}\n", 3, f"DeepSpeed config '{ds}' ({ds}) is not valid JSON at line 1, column 36")
    assert "transformers reads it with json.load" in msg


# 8. the schema's ranges (schema.RANGES, the validator's CC103) and types
@pytest.mark.parametrize("body, line, needle", [
    ("learning_rate: -1e-6\n", 3, "learning_rate = -0.000001 is out of range: it must be >= 0."),
    ("top_p: 1.5\n", 3, "top_p = 1.5 is out of range: it must be > 0 and <= 1."),
    ("temperature: 0\n", 3, "temperature = 0 is out of range: it must be > 0."),
    ("epsilon: -0.2\n", 3, "epsilon = -0.2 is out of range: it must be >= 0."),
    ("num_iterations: 0\n", 3, "num_iterations = 0 is out of range: it must be >= 1."),
    ("lora_r: 0\n", 3, "lora_r = 0 is out of range: it must be >= 1."),
    ("max_grad_norm: -1\n", 3, "max_grad_norm = -1 is out of range: it must be >= 0."),
    ("weight_decay: -0.1\n", 3, "weight_decay = -0.1 is out of range: it must be >= 0."),
    ("num_train_epochs: -1\n", 3, "num_train_epochs = -1 is out of range: it must be >= 0."),
    ("answer_max_words: 0\n", 3, "answer_max_words = 0 is out of range: it must be >= 1."),
    ("top_p: '0'\n", 3, "top_p = 0 is out of range: it must be > 0 and <= 1."),
    ("launch:\n  vllm_server_gpus: 0\n", 4, "launch.vllm_server_gpus = 0 is out of range: it must be >= 1."),
    ("report_to: no\n", 3, "report_to expects a string, a list or null, got false (YAML 1.1 reads `no` as a boolean). Quote it to keep the text: 'no'."),
    ("report_to: [tensorboard, no]\n", 3, "report_to[1] expects a string, got false"),
    ("safety:\n  open_tag: yes\n", 4, "safety.open_tag expects a string, got true (YAML 1.1 reads `yes` as a boolean). Quote it to keep the text: 'yes'."),
])
def test_out_of_range_and_wrong_type_values_are_refused_at_load(tmp_path, body, line, needle):
    _refused(tmp_path, BASE + body, line, needle)


def test_values_at_the_edge_of_their_range_load(tmp_path):
    r = _loads(tmp_path, BASE + "top_p: 1\nlearning_rate: 0\nmax_grad_norm: .inf\nnum_train_epochs: 0.5\nresume_from_checkpoint: false\n"
                               "safety:\n  open_tag: '<s>'\n")
    assert r.training_args.top_p == 1 and r.training_args.learning_rate == 0 and r.safety.open_tag == "<s>"


# 6. deepspeed: against the recipe's folder, not the current one
def test_deepspeed_is_resolved_against_the_recipes_folder_and_checked_at_load(tmp_path, monkeypatch):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "z2.json").write_text('{"zero_optimization": {"stage": 2}}\n')
    other = tmp_path / "cwd"
    other.mkdir()
    monkeypatch.chdir(other)
    # TrainingArguments read it from the current folder: "Expected a string path to an existing deepspeed config"
    try:
        r = _loads(tmp_path, BASE + "deepspeed: ds/z2.json\n")
        assert r.training_args.deepspeed == str(tmp_path / "ds" / "z2.json")
    except RecipeError as e:  # transformers 5 reads the config only with the deepspeed package installed
        assert str(e).startswith(f"{tmp_path / 'ok.yaml'}:3: deepspeed: ") and "deepspeed" in str(e)[len(str(tmp_path)):], str(e)
        assert not TRL018, str(e)
    _refused(tmp_path, BASE + "deepspeed: ds/missing.json\n", 3,
             f"DeepSpeed config 'ds/missing.json' not found (looked for {tmp_path / 'ds' / 'missing.json'} (the recipe's folder) "
             f"and {other / 'ds' / 'missing.json'} (the working folder))")
    (tmp_path / "ds" / "bad.json").write_text('{"zero_optimization": {"stage": 2}, // comment\n}\n')
    _refused(tmp_path, BASE + "seed: 1\ndeepspeed: ds/bad.json\n", 4, "DeepSpeed config 'ds/bad.json' (")


def test_deepspeed_relative_to_the_folder_the_run_starts_in_loads_with_its_absolute_path(tmp_path, monkeypatch):
    # `deepspeed: configs/ds_zero3.json` in recipes/exp/, run from the repository root, as transformers opens it
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "z3.json").write_text('{"zero_optimization": {"stage": 3}}\n')
    (tmp_path / "recipes").mkdir()
    monkeypatch.chdir(tmp_path)
    try:
        r = _loads(tmp_path / "recipes", BASE + "deepspeed: configs/z3.json\n")
        assert r.training_args.deepspeed == str(tmp_path / "configs" / "z3.json")
    except RecipeError as e:  # transformers 5 reads the config only with the deepspeed package installed
        assert "DeepSpeed config" not in str(e) and str(e).startswith(f"{tmp_path / 'recipes' / 'ok.yaml'}:3: deepspeed: "), str(e)
        assert not TRL018, str(e)
    # next to the recipe wins over the working folder
    (tmp_path / "recipes" / "configs").mkdir()
    (tmp_path / "recipes" / "configs" / "z3.json").write_text('{"zero_optimization": {"stage": 2}}\n')
    try:
        r = _loads(tmp_path / "recipes", BASE + "deepspeed: configs/z3.json\n")
        assert r.training_args.deepspeed == str(tmp_path / "recipes" / "configs" / "z3.json")
    except RecipeError as e:
        assert "DeepSpeed config" not in str(e) and not TRL018, str(e)


# 13. TRL 1.x / transformers 5 take true/false for some text keys: scale_rewards (True: "group",
# False: "none"), trackio_static_space_id (False: no static Space); quoting them failed mid-run
@pytest.mark.parametrize("body, attr, want", [  # TRL 0.18: scale_rewards is a boolean, no trackio_static_space_id
    ("scale_rewards: false\n", "scale_rewards", False),
    ("scale_rewards: true\n", "scale_rewards", True),
] if TRL018 else [
    ("scale_rewards: false\n", "scale_rewards", "none"),
    ("scale_rewards: true\n", "scale_rewards", "group"),
    ("scale_rewards: batch\n", "scale_rewards", "batch"),
    ("trackio_static_space_id: false\n", "trackio_static_space_id", False),
])
def test_trl1_text_keys_that_take_a_boolean_load(tmp_path, body, attr, want):
    assert getattr(_loads(tmp_path, BASE + body).training_args, attr) == want


def test_booleans_for_text_keys_that_do_not_take_them_are_still_refused(tmp_path):
    _refused(tmp_path, BASE + "hub_model_id: no\n", 3, "hub_model_id expects a string or null, got false")


def test_the_keys_that_take_a_boolean_are_marked_in_the_schema_the_validator_reads():
    from conscience.recipe import BOOL_AS_TEXT

    name = "recipe.schema.json" if TRL018 else "recipe.trl1.schema.json"
    with open(os.path.join(ROOT, "schemas", name), encoding="utf-8") as f:
        props = json.load(f)["properties"]
    marked = sorted(k for k, v in props.items() if v.get("x-accepts-bool"))
    assert marked == sorted(k for k in BOOL_AS_TEXT if k in props and props[k].get("type") != "boolean"), marked
    assert all("boolean" in props[k]["type"] and "enum" not in props[k] for k in marked)


# 10. safety.eval_recipe: loaded at trainer setup, after the data and the model
def test_a_missing_or_invalid_eval_recipe_is_refused_at_load(tmp_path):
    _refused(tmp_path, BASE + "safety:\n  eval_recipe: ./nope.yaml\n  eval_steps: 4\n", 4,
             f"safety.eval_recipe: Eval recipe './nope.yaml' not found (resolved against the recipe's folder: {tmp_path / 'nope.yaml'})")
    _write(tmp_path, BASE + "max_steps: 2\n", "grpo.yaml")
    _refused(tmp_path, BASE + "safety:\n  eval_steps: 4\n  eval_recipe: grpo.yaml\n", 5,
             "safety.eval_recipe: " + str(tmp_path / "grpo.yaml") + ":1: not an eval recipe (kind: grpo)")
    _write(tmp_path, "kind: eval\nmodel_name_or_path: conscience/tiny\nmax_prompts: 0\n", "bad-eval.yaml")
    _refused(tmp_path, BASE + "safety:\n  eval_recipe: bad-eval.yaml\n  eval_steps: 4\n", 4,
             "safety.eval_recipe: " + str(tmp_path / "bad-eval.yaml") + ":3: ")
    _write(tmp_path, "kind: eval\nmodel_name_or_path: conscience/tiny\nmax_prompts: 4\n", "eval.yaml")
    r = _loads(tmp_path, BASE + "safety:\n  eval_recipe: eval.yaml\n  eval_steps: 4\n")
    assert r.safety.eval_recipe == str(tmp_path / "eval.yaml")


# 11. launch.accelerate_config: accelerate failed on it after the launcher started
@pytest.mark.parametrize("name, content, needle", [
    ("missing.yaml", None, "Accelerate config 'acc/missing.yaml' not found (resolved against the recipe's folder: "),
    ("bad.yaml", "distributed_type: MULTI_GPU\n\tnum_processes: 2\n", "cannot be read: it is not valid YAML at line 2"),
    ("bad.json", '{"distributed_type": "MULTI_GPU",}', "cannot be read: it is not valid JSON (accelerate reads a .json config with json.load) at line 1"),
    ("list.yaml", "- a\n", "the accelerate config is empty or not a mapping."),
])
def test_a_missing_or_unparsable_accelerate_config_is_refused_at_load_and_by_the_launcher(tmp_path, name, content, needle):
    (tmp_path / "acc").mkdir()
    if content is not None:
        (tmp_path / "acc" / name).write_text(content)
    text = BASE + f"launch:\n  cpu: true\n  accelerate_config: acc/{name}\n"
    msg = _refused(tmp_path, text, 5, needle)
    assert f"launch.accelerate_config: Accelerate config 'acc/{name}'" in msg
    p = _write(tmp_path, text)
    out = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", p, "--dry-run"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 2 and out.stderr.strip() == f"conscience.launch: {msg}", out.stdout + out.stderr


def test_a_good_accelerate_config_is_passed_to_accelerate(tmp_path):
    (tmp_path / "acc").mkdir()
    (tmp_path / "acc" / "ddp.yaml").write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    p = _write(tmp_path, BASE + "launch:\n  accelerate_config: acc/ddp.yaml\n")
    out = subprocess.run([sys.executable, "-m", "conscience.launch", "--config", p, "--dry-run"],
                         capture_output=True, text=True, timeout=120, env=ENV, check=True)
    argv = json.loads(out.stdout)
    assert argv[argv.index("--config_file") + 1] == str(tmp_path / "acc" / "ddp.yaml")


# 12. chat_template: a Jinja syntax error failed when the first prompt was formatted
def test_a_chat_template_with_a_jinja_syntax_error_is_refused_at_load(tmp_path):
    _refused(tmp_path, BASE + 'chat_template: "{% for m in messages %}{{ m.content }"\n', 3,
             "chat_template: Jinja syntax error at line 1 of the template: unexpected '}'")
    (tmp_path / "t.jinja").write_text("{% for m in messages %}\n{{ m['content'] }}\n{% if x %}\n{% endfor %}\n")
    _refused(tmp_path, BASE + "seed: 1\nchat_template: t.jinja\n", 4,
             "chat_template: Jinja syntax error at line 4 of the template in t.jinja: ")
    (tmp_path / "ok.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert _loads(tmp_path, BASE + "chat_template: ok.jinja\n").script_args.chat_template.startswith("{% for m")


@pytest.mark.parametrize(
    "body,line,needle",
    [
        # a key the schedule does not take: transformers' TypeError when training starts (CC234)
        ("lr_scheduler_type: cosine\nlr_scheduler_kwargs:\n  min_lr: 1.0e-6\n", "lr_scheduler_kwargs", "get_cosine_schedule_with_warmup() got an unexpected keyword argument 'min_lr'"),
        # cosine_with_min_lr without min_lr or min_lr_rate: its ValueError (CC212)
        ("lr_scheduler_type: cosine_with_min_lr\n", "lr_scheduler_type", "One of min_lr or min_lr_rate should be set"),
        # torch's ReduceLROnPlateau takes no such argument
        ("lr_scheduler_type: reduce_lr_on_plateau\neval_strategy: steps\neval_steps: 5\nlr_scheduler_kwargs: '{\"patiense\": 3}'\n", "lr_scheduler_kwargs", "unexpected keyword argument 'patiense'"),
        # polynomial's lr_end above the recipe's own learning rate (checked against that, not a stand-in)
        ("learning_rate: 1.0e-6\nlr_scheduler_type: polynomial\nlr_scheduler_kwargs:\n  lr_end: 1.0e-5\n", "lr_scheduler_kwargs", "lr_end (1e-05) must be smaller than initial lr (1e-06)"),
        # torch's KeyError (last_epoch without an initial_lr): named with its line, not a traceback
        ("lr_scheduler_type: cosine\nlr_scheduler_kwargs:\n  last_epoch: 5\n", "lr_scheduler_kwargs", "initial_lr"),
        ("lr_scheduler_type: warmup_stable_decay\nlr_scheduler_kwargs:\n  num_stable_steps: 5\n", "lr_scheduler_kwargs", "missing 1 required positional argument: 'num_decay_steps'"),
    ],
)
def test_a_learning_rate_schedule_transformers_cannot_build_is_refused_at_load_with_its_line(tmp_path, body, line, needle):
    text = BASE + body
    at = text.splitlines().index(next(l for l in text.splitlines() if l.startswith(line))) + 1
    _refused(tmp_path, text, at, needle)


def test_learning_rate_schedules_transformers_builds_load(tmp_path):
    for body in (
        "lr_scheduler_type: cosine\nlr_scheduler_kwargs:\n  num_cycles: 0.5\n",
        "lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr_rate: 0.1\n",
        # ignored by transformers (the validator warns, CC235): not refused
        "lr_scheduler_type: constant_with_warmup\nlr_scheduler_kwargs:\n  num_cycles: 2\n",
        # lr_end below the recipe's learning rate (1e-2), above the 1e-3 a stand-in optimizer had
        "learning_rate: 1.0e-2\nlr_scheduler_type: polynomial\nlr_scheduler_kwargs:\n  lr_end: 1.0e-3\n",
    ):
        _loads(tmp_path, BASE + body)


# num_train_epochs: 0 with no max_steps ran as "completed" with 0 steps (SFT saved the untrained model)
def test_zero_epochs_without_max_steps_is_refused_at_its_line_for_grpo_and_sft(tmp_path):
    needle = "num_train_epochs: 0 with max_steps -1 trains no step"
    _refused(tmp_path, BASE + "num_train_epochs: 0\n", 3, needle)
    _refused(tmp_path, BASE + "max_steps: 0\nnum_train_epochs: 0\n", 4, "num_train_epochs: 0 with max_steps 0 trains no step")
    assert _loads(tmp_path, BASE + "num_train_epochs: 0\nmax_steps: 2\n").training_args.max_steps == 2
    from conscience.sft import load_sft_recipe

    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"id": "t1", "prompt": "p", "label": "benign", "budget": 0, "safety": "", "answer": "a"}) + "\n")
    sft = _write(tmp_path, f"kind: sft\nmodel_name_or_path: conscience/tiny\ndataset_name: {traces}\nnum_train_epochs: 0\n", "s.yaml")
    with pytest.raises(RecipeError) as e:
        load_sft_recipe(sft, CPU + ["--output_dir", str(tmp_path / "out")])
    assert str(e.value).startswith(f"{sft}:4: {needle}"), str(e.value)


# tags that contain each other: every well-formed completion scored 0.5 on safety_format
@pytest.mark.parametrize("body, line, needle", [
    ("safety:\n  open_tag: '<safety>'\n  close_tag: '<safety>end'\n", 5, "safety.close_tag '<safety>end' contains safety.open_tag '<safety>'"),
    ("safety:\n  open_tag: '[[s]]'\n  close_tag: 's'\n", 4, "safety.open_tag '[[s]]' contains safety.close_tag 's'"),
    ("safety:\n  budget_instruction: 'Reason inside {open_tag}{close_tag}, then answer.'\n", 4,
     "safety.budget_instruction has no {budget}: the policy would never be told its budget"),
    ("safety:\n  budget_instruction: 'Reason briefly ({{budget}} is literal).'\n", 4, "safety.budget_instruction has no {budget}"),
])
def test_tags_that_contain_each_other_and_an_instruction_without_its_budget_are_refused(tmp_path, body, line, needle):
    _refused(tmp_path, BASE + body, line, needle)


# YAML that PyYAML reads apart from the editor and the validator: refused with FILE:LINE, in the
# validator's words (extension/test/recipes/loader-parity.test.ts runs the same files through both)
@pytest.mark.parametrize("body, line, needle", [
    # a date where text is expected: run_name became datetime.date, and TrainingArguments.to_json_string failed
    ("run_name: 2024-05-01\n", 3, "run_name expects a string or null, got a date (YAML 1.1 reads `2024-05-01` as a date). "
                                  "Quote it to keep the text: '2024-05-01'."),
    ("safety:\n  open_tag: 2024-05-01\n", 4, "safety.open_tag expects a string, got a date (YAML 1.1 reads `2024-05-01` as a date)."),
    ("reward_funcs: [refusal, 2024-05-01]\n", 3, "reward_funcs[1] expects a string, got a date"),
    ("run_name: 2024-02-30\n", 3, "invalid YAML: cannot read '2024-02-30' as a timestamp (YAML 1.1 takes it for one)"),
    # !!binary is bytes: open_tag became the text "b'<safety>'"
    ("safety:\n  open_tag: !!binary PHNhZmV0eT4=\n", 4, "safety.open_tag expects a string, got binary data (!!binary)."),
    ("run_name: !!binary aGVsbG8=\n", 3, "run_name expects a string or null, got binary data (!!binary)."),
    # PyYAML's int pattern matches, int() does not: a traceback before
    ("max_steps: 0b_\n", 3, "invalid YAML: cannot read '0b_' as an integer (YAML 1.1 takes it for one); quote it to keep the text: '0b_'"),
    # NEL / LS / PS end a line to PyYAML only: what follows one in a comment was live YAML
    ("# was: \u2028beta: 0.9\n", 3, "invalid YAML: unusual line terminator U+2028 (LINE SEPARATOR): PyYAML reads it as a new line"),
    ("seed: 1\n# x\u0085remove_unused_columns: true\n", 4, "unusual line terminator U+0085 (NEXT LINE)"),
    ("run_name: a\u2029b\n", 3, "unusual line terminator U+2029 (PARAGRAPH SEPARATOR)"),
    # a control character: the error named no line, only "position 382"
    ("seed: 1\n# bell \u0007 here\n", 4, "invalid YAML: non-printable character U+0007: PyYAML refuses special characters anywhere"),
    ("\n# \u2028\nsystem_prompt: \"a \u009b b\"\n", 5, "non-printable character U+009B"),  # before a line separator, as PyYAML
    # the context of a composer error: it said only "second occurrence"
    ("seed: &n 1\nrun_name: &n x\n", 4, "invalid YAML: found duplicate anchor 'n' (first on line 3); PyYAML refuses an anchor defined twice"),
    # a value that contains itself: "Circular reference detected" from transformers, with no line
    ("lr_scheduler_kwargs: &k {a: *k}\n", 3, "lr_scheduler_kwargs.a is an alias of a collection it is inside: a value that contains itself"),
    ("reward_funcs: &r [refusal, *r]\n", 3, "reward_funcs[1] is an alias of a collection it is inside"),
    ("safety: &s {<<: *s}\n", 3, "a mapping merged into itself"),
    # a key YAML reads as a boolean, null or number: named as written, at its line (it said line 1, 'True')
    ("seed: 1\non: push\n", 4, "Unknown key 'on': a recipe's keys are names of settings, and YAML reads this one as bool"),
    ("null: 1\n", 3, "Unknown key 'null'"),
    ("0x10: 1\n", 3, "Unknown key '0x10'"),
])
def test_yaml_pyyaml_reads_apart_from_the_editor_is_refused_at_its_line(tmp_path, body, line, needle):
    _refused(tmp_path, BASE + body, line, needle)


@pytest.mark.parametrize("body", [
    "run_name: '2024-05-01'\n",  # quoted: text
    "run_name: 2024-5-1\n",  # not YAML 1.1's date pattern: text
    "run_name: \"a\u2028b\"\n",  # a line separator inside quotes is a character to both
    "run_name: n\n",  # PyYAML's booleans are yes/no/true/false/on/off only
])
def test_text_pyyaml_reads_as_text_loads(tmp_path, body):
    _loads(tmp_path, BASE + "reward_funcs: [refusal]\n" + body)
