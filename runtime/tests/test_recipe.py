"""Reading recipes: our sections, flat TRL keys, errors with file and line, the launcher's argv."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from conscience.launch import build_command
from conscience.recipe import (
    SECTION_DATACLASSES,
    LaunchConfig,
    RecipeError,
    SafetyConfig,
    load_recipe,
    recipe_dataclasses,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")


def test_demo_recipe_parses():
    r = load_recipe(DEMO)
    assert r.model_args.model_name_or_path == "conscience/tiny"
    assert r.script_args.reward_funcs == ["safety_format", "safety_budget", "refusal", "repetition_penalty"]
    assert r.training_args.max_steps == 8 and r.training_args.logging_steps == 1
    assert r.launch.num_processes == 2 and r.launch.cpu
    assert r.safety.open_tag == "<safety>"
    assert len(r.sha256) == 64


def test_sections_are_introspectable_dataclasses():
    assert SECTION_DATACLASSES == {"launch": LaunchConfig, "safety": SafetyConfig}
    for cls in list(SECTION_DATACLASSES.values()) + recipe_dataclasses()[:1]:
        for f in dataclasses.fields(cls):
            if f.name in ("gradient_checkpointing_use_reentrant", "ignore_bias_buffers"):
                continue
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def _recipe(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_unknown_keys_name_file_and_line(tmp_path):
    p = _recipe(tmp_path, "max_steps: 2\nvllm_device: auto\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:2: unknown keys for TRL .*vllm_device \(line 2\)"):
        load_recipe(p)
    p = _recipe(tmp_path, "max_steps: 2\nsafety:\n  open_tag: '<s>'\n  colour: red\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:4: safety\.colour: unknown key"):
        load_recipe(p)
    p = _recipe(tmp_path, "launch:\n  num_processes: many\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:2: launch\.num_processes: expected an integer"):
        load_recipe(p)
    p = _recipe(tmp_path, "safety:\n  budget_mode: sometimes\n")
    with pytest.raises(RecipeError, match=r"budget_mode must be exact or max"):
        load_recipe(p)


def test_bad_yaml_and_non_mapping(tmp_path):
    with pytest.raises(RecipeError, match=r"r\.yaml:2: invalid YAML"):
        load_recipe(_recipe(tmp_path, "a: 1\n  b: 2\n"))
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe(_recipe(tmp_path, "- just\n- a list\n"))
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\x00\x01\x02")
    with pytest.raises(RecipeError, match="binary"):
        load_recipe(str(p))


def test_allocator_section_passes_through_and_paths_resolve(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.jsonl").write_text("")
    (tmp_path / ".." / "acc").mkdir(exist_ok=True)
    (tmp_path / ".." / "acc" / "zero2.yaml").write_text("distributed_type: DEEPSPEED\n")
    p = _recipe(
        tmp_path,
        "dataset_name: ./data/p.jsonl\nmodel_name_or_path: Qwen/Qwen2.5-0.5B\n"
        "launch:\n  accelerate_config: ../acc/zero2.yaml\nallocator:\n  budget_deep: 768\n",
    )
    r = load_recipe(p, ["--output_dir", str(tmp_path / "out"), "--max_steps", "3"])
    assert r.allocator == {"budget_deep": 768}
    assert r.script_args.dataset_name == str(tmp_path / "data" / "p.jsonl")
    assert r.model_args.model_name_or_path == "Qwen/Qwen2.5-0.5B"  # a hub name stays a hub name
    assert r.launch.accelerate_config == os.path.normpath(str(tmp_path / ".." / "acc" / "zero2.yaml"))
    assert r.training_args.output_dir == str(tmp_path / "out") and r.training_args.max_steps == 3


def test_launcher_argv():
    cmd = build_command(DEMO, ["--output_dir", "/tmp/x; rm -rf /"])
    i = cmd.index("accelerate.commands.launch")
    assert cmd[i + 1:i + 5] == ["--num_processes", "2", "--num_machines", "1"]
    assert "--multi_gpu" in cmd  # torchrun launcher; the trainer stays on CPU
    assert cmd[cmd.index("conscience.train") - 1] == "-m"
    assert cmd[-4:] == ["--use_cpu", "true", "--output_dir", "/tmp/x; rm -rf /"]  # argv, never a shell string
    out = subprocess.run(
        [sys.executable, "-m", "conscience.launch", "--config", DEMO, "--dry-run"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)[-3:] == ["/".join([ROOT, "recipes/demo/tiny-cpu.yaml"]), "--use_cpu", "true"]


def test_vllm_server_plan_splits_gpus(tmp_path):
    from conscience.launch import plan

    p = _recipe(
        tmp_path,
        "model_name_or_path: Qwen/Qwen2.5-0.5B\nuse_vllm: true\n"
        "launch:\n  num_processes: 3\n  vllm_server: true\n  vllm_server_gpus: 1\n",
    )
    pl = plan(p, ["--max_steps", "5"], env={"CUDA_VISIBLE_DEVICES": "4,5,6,7"}, server_port=8123)
    assert pl["server_env"] == {"CUDA_VISIBLE_DEVICES": "7"}
    assert pl["train_env"]["CUDA_VISIBLE_DEVICES"] == "4,5,6"
    srv = pl["server"]
    assert srv[1:3] == ["-m", "trl.scripts.vllm_serve"] and "--model=Qwen/Qwen2.5-0.5B" in srv
    assert srv[srv.index("--port") + 1] == "8123"
    assert pl["train"][-6:] == ["--vllm_server_host", "127.0.0.1", "--vllm_server_port", "8123", "--max_steps", "5"]
    with pytest.raises(RecipeError, match="needs 3 training GPUs \\+ 1 for the vLLM server, this machine has 2"):
        plan(p, env={"CUDA_VISIBLE_DEVICES": "0,1"})
    # without a server: nothing extra
    pl = plan(DEMO, env={})
    assert pl["server"] is None and pl["train_env"] == {"OMP_NUM_THREADS": "1"}
    assert plan(DEMO, env={"OMP_NUM_THREADS": "4"})["train_env"] == {}


def test_recipe_kind_picks_the_runtime_module(tmp_path):
    # `kind: sft` / `kind: eval` recipes are started as their own module through accelerate;
    # a bad kind names the file and line; the GRPO loader refuses a recipe of another kind.
    from conscience.recipe import RecipeError, load_recipe

    sft = tmp_path / "sft.yaml"
    sft.write_text("kind: sft\nlaunch:\n  num_processes: 2\n  cpu: true\n")
    cmd = build_command(str(sft), [])
    assert cmd[cmd.index("-m", 3) + 1] == "conscience.sft"
    with pytest.raises(RecipeError, match=r"sft.yaml:1: this is a `kind: sft` recipe; run it with python -m conscience.sft"):
        load_recipe(str(sft))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: x\nkind: rl\n")
    with pytest.raises(RecipeError, match=r"bad.yaml:2: kind must be one of grpo, sft, eval, got 'rl'"):
        build_command(str(bad), [])


def test_a_bad_budget_wording_or_sample_count_is_a_recipe_error_with_its_line(tmp_path):
    # formatted for every prompt at run time: a bad placeholder failed mid-run with no file or line
    for body, line, needle in (
        ("safety:\n  budget_instruction: 'use {tokens} tokens'\n", 4, "safety.budget_instruction: KeyError: 'tokens'"),
        ("safety:\n  zero_budget_instruction: 'no { here'\n", 4, "safety.zero_budget_instruction: ValueError"),
        ("max_train_samples: 0\n", 3, "max_train_samples = 0 is out of range: it must be >= 1."),
    ):
        p = _recipe(tmp_path, "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n" + body)
        with pytest.raises(RecipeError) as e:
            load_recipe(p, ["--output_dir", str(tmp_path / "out")])
        assert str(e.value).startswith(f"{p}:{line}: ") and needle in str(e.value), str(e.value)
    ok = _recipe(tmp_path, "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
                           "safety:\n  budget_instruction: 'Think in {open_tag} for {budget} tokens {{max}}'\n")
    assert load_recipe(ok, ["--output_dir", str(tmp_path / "out")]).safety.budget_instruction.endswith("{{max}}")


def test_a_quantized_policy_is_refused_not_silently_trained_in_full_precision(tmp_path):
    from conscience.sft import load_sft_recipe

    p = _recipe(tmp_path, "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\nload_in_4bit: true\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:3: load_in_4bit: a quantized policy is not supported"):
        load_recipe(p, ["--output_dir", str(tmp_path / "out")])
    s = _recipe(tmp_path, "kind: sft\nmodel_name_or_path: conscience/tiny\ndataset_name: conscience/safety_traces\n\nload_in_8bit: true\n", "s.yaml")
    with pytest.raises(RecipeError, match=r"s\.yaml:5: load_in_8bit"):
        load_sft_recipe(s, ["--output_dir", str(tmp_path / "out")])


def test_an_allocator_typo_an_empty_recipe_and_an_infinite_step_count_are_refused_at_load(tmp_path):
    base = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
    for body, where, needle in (
        # a typo fell back to per-label budgets in the middle of the run (budget_source: auto)
        # at the key's line, as the validator and the gateway name it
        ("allocator:\n  budget_dep: 768\n", ":4: ", "allocator: unknown allocator setting 'budget_dep'"),
        ("allocator:\n  budget_deep: 768\n  risk_harmful: 2\n", ":5: ", "allocator.risk_harmful must be a number in [0, 1]"),
        ("allocator: {risk_harmful: 2}\n", ":3: ", "allocator.risk_harmful must be a number in [0, 1]"),
        ("logging_steps: .inf\n", ":3: ", "logging_steps"),
        # an integer key without a bound: training never ended (max_steps) or failed deep in the Trainer
        ("max_steps: .inf\n", ":3: ", "max_steps expects an integer, got inf"),
        ("seed: .nan\n", ":3: ", "seed expects an integer, got nan"),
    ):
        p = _recipe(tmp_path, base + body)
        with pytest.raises(RecipeError) as e:
            load_recipe(p, ["--output_dir", str(tmp_path / "out")])
        assert str(e.value).startswith(p + where) and needle in str(e.value), str(e.value)
    for empty in ("", "# only a comment\n", "~\n"):
        p = _recipe(tmp_path, empty)
        with pytest.raises(RecipeError, match=r"r\.yaml:1: the recipe is empty"):
            load_recipe(p, ["--output_dir", str(tmp_path / "out")])


def _refused_at(tmp_path, text, line, needle):
    """The recipe `text` is refused at load, its error starting with FILE:LINE and holding `needle`."""
    p = _recipe(tmp_path, text)
    with pytest.raises(RecipeError) as e:
        load_recipe(p, ["--output_dir", str(tmp_path / "out")])
    assert str(e.value).startswith(f"{p}:{line}: ") and needle in str(e.value), str(e.value)


def test_a_single_value_for_a_list_key_is_refused_with_its_line_unless_the_key_takes_one_string(tmp_path):
    base = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
    out = ["--output_dir", str(tmp_path / "out")]
    # TrlParser passed these on as they are: the trainer iterated over the characters of "labels"
    # and failed mid-run on len(1.0)
    for body, needle in (
        ("label_names: labels\n", "label_names expects a list, got 'labels'; write it as a list: label_names: [labels]"),
        ("reward_weights: 1.0\n", "reward_weights expects a list, got 1.0"),
        ("lora_modules_to_save: lm_head\n", "lora_modules_to_save expects a list"),
    ):
        _refused_at(tmp_path, base + body, 3, needle)
    # ...while these take one string: a one-element list, and PEFT's regex / `all-linear`
    r = load_recipe(_recipe(tmp_path, base + "reward_funcs: refusal\nlora_target_modules: all-linear\n"), out)
    assert r.script_args.reward_funcs == ["refusal"]
    assert r.model_args.lora_target_modules == "all-linear"


def test_a_number_boolean_or_null_a_list_key_cannot_use_is_refused_with_its_line(tmp_path):
    base = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
    out = ["--output_dir", str(tmp_path / "out")]
    # TrlParser passed these on: `reward_funcs: 5` failed at the trainer's setup, PEFT failed on
    # target_modules=5, and `include_for_metrics: None` at the Trainer's first evaluation
    for body, needle in (
        ("reward_funcs: 5\n", "reward_funcs expects a list or a string, got the number 5; quote it if it is meant as text: '5'"),
        ("reward_funcs: 2.5\n", "reward_funcs expects a list or a string, got the number 2.5"),
        ("reward_funcs: yes\n", "reward_funcs expects a list or a string, got true (a boolean in YAML)"),
        ("reward_funcs: null\n", "reward_funcs expects a list or a string, got null; leave the key out for its default"),
        ("lora_target_modules: 5\n", "lora_target_modules expects a list, a string or null, got the number 5"),
        ("include_for_metrics: null\n", "include_for_metrics expects a list, got null"),
        ("include_for_metrics:\n", "include_for_metrics expects a list, got null"),
    ):
        _refused_at(tmp_path, base + body, 3, needle)
    # null where the class takes it: lora_target_modules' default, and debug, which
    # TrainingArguments reads as no debug options
    r = load_recipe(_recipe(tmp_path, base + "lora_target_modules: null\ndebug: null\ninclude_for_metrics: [loss]\n"), out)
    assert r.model_args.lora_target_modules is None
    assert r.training_args.debug == []
    assert r.training_args.include_for_metrics == ["loss"]


def test_infinity_and_nan_are_refused_with_the_line_except_max_grad_norm_inf(tmp_path):
    import math

    base = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
    out = ["--output_dir", str(tmp_path / "out")]
    for body in ("learning_rate: .inf\n", "learning_rate: inf\n", "learning_rate: .nan\n", "max_grad_norm: -.inf\n",
                 "max_grad_norm: .nan\n", "temperature: .inf\n"):
        p = _recipe(tmp_path, base + body)
        with pytest.raises(RecipeError) as e:
            load_recipe(p, out)
        key = body.split(":")[0]
        assert str(e.value).startswith(f"{p}:3: {key} = ") and "is not a finite number: it must be" in str(e.value), str(e.value)
    # no clipping (the norm is still logged): TrainingArguments keeps it
    r = load_recipe(_recipe(tmp_path, base + "max_grad_norm: .inf\n"), out)
    assert r.training_args.max_grad_norm == math.inf


def test_a_trl_check_that_names_its_key_later_in_the_message_gets_that_keys_line(tmp_path):
    base = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"
    for body, line, needle in (
        ("dataloader_prefetch_factor: 2\n", 3, "--dataloader_prefetch_factor can only be set"),
        ("logging_steps: 5\nlr_scheduler_type: sometimes\n", 4, "sometimes is not a valid SchedulerType"),
    ):
        p = _recipe(tmp_path, base + body)
        with pytest.raises(RecipeError) as e:
            load_recipe(p, ["--output_dir", str(tmp_path / "out")])
        assert str(e.value).startswith(f"{p}:{line}: ") and needle in str(e.value), str(e.value)


GRPO_BASE = "dataset_name: conscience/safety_prompts\nmodel_name_or_path: conscience/tiny\n"


@pytest.mark.parametrize("body, line, needle", [
    # TRL kept only `prompt`: safety_budget and refusal scored 0.0 for every row and the run "completed"
    ("remove_unused_columns: true\n", 3, "remove_unused_columns: true drops every dataset column but the prompt"),
    # an unknown name failed with a traceback once the trainer was built; [] trained on nothing
    ("reward_funcs: [safety_format, bogus]\n", 3, "Unknown reward function 'bogus': the runtime knows safety_format, "),
    ("reward_funcs: bogus\n", 3, "Unknown reward function 'bogus'"),
    ("reward_funcs: []\n", 3, "reward_funcs is empty: GRPO needs at least one reward function"),
    # TRL raised when the trainer was built, after the model was loaded
    ("reward_funcs: [safety_format, refusal]\nreward_weights: [1.0]\n", 4,
     "Number of reward weights (1) must match number of reward functions (2)"),
    # every completion penalised
    ("reward_funcs: [refusal, soft_overlong_punishment]\nmax_completion_length: 16\nsoft_punish_cache: 16\n", 5,
     "soft_punish_cache (16) must be less than max_completion_length (16, line 4)"),
    ("reward_funcs: [soft_overlong_punishment]\nsoft_punish_cache: 300\n", 4,
     "soft_punish_cache (300) must be less than max_completion_length (256, the default)"),
    # Python renders a format spec; the gateway's TypeScript template left it verbatim
    ("safety:\n  budget_instruction: 'use {budget:d} tokens in {open_tag}{close_tag}'\n", 4,
     "safety.budget_instruction: {budget:d} has a format spec, conversion or index; write the plain {budget}"),
    ("safety:\n  zero_budget_instruction: 'empty {open_tag!s}{close_tag}'\n", 4,
     "safety.zero_budget_instruction: {open_tag!s} has a format spec"),
    ("safety:\n  budget_instruction: 'about {budget:>4} tokens'\n", 4, "{budget:>4} has a format spec"),
    ("safety:\n  budget_instruction: 'in {open_tag[0]} {budget}'\n", 4, "{open_tag[0]} has a format spec, conversion or index; write the plain {open_tag}"),
    # str.format raised TypeError / AttributeError for these: a traceback instead of the line
    ("safety:\n  budget_instruction: 'at most {budget[0]} tokens'\n", 4, "safety.budget_instruction: TypeError"),
    ("safety:\n  budget_instruction: 'in {open_tag.x} {budget}'\n", 4, "safety.budget_instruction: AttributeError"),
    # read when the trainer built its tokenizer: a traceback after the model was loaded
    ("chat_template: templates/missing.jinja\n", 3, "chat_template file "),
])
def test_grpo_recipe_mistakes_the_trainer_took_are_refused_at_load_with_the_line(tmp_path, body, line, needle):
    _refused_at(tmp_path, GRPO_BASE + body, line, needle)


def test_what_those_checks_accept(tmp_path):
    out = ["--output_dir", str(tmp_path / "out")]
    r = load_recipe(_recipe(tmp_path, GRPO_BASE + "remove_unused_columns: false\nreward_funcs: refusal\nreward_weights: [2.0]\n"
                                      "soft_punish_cache: 300\n"), out)
    assert r.training_args.remove_unused_columns is False and r.script_args.reward_funcs == ["refusal"]
    r = load_recipe(_recipe(tmp_path, GRPO_BASE + "reward_funcs: [soft_overlong_punishment]\nmax_completion_length: 32\n"
                                      "soft_punish_cache: 31\nsafety:\n  budget_instruction: '{{budget:d}} is literal, {budget} is not'\n"), out)
    assert r.safety.instruction(7) == "{budget:d} is literal, 7 is not"
    # a template file is read at load, relative to the recipe, as SFT and eval read theirs
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}\r\n")
    r = load_recipe(_recipe(tmp_path, GRPO_BASE + "chat_template: templates/t.jinja\n"), out)
    assert r.script_args.chat_template == "{% for m in messages %}{{ m['content'] }}{% endfor %}\n"


def test_a_fifo_recipe_or_template_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    code = ("import sys; from conscience.recipe import RecipeError, load_recipe\n"
            "try:\n    load_recipe(sys.argv[1])\nexcept RecipeError as e:\n    print(e)\n")
    # in a child with a timeout: the bug is a load that blocks forever
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "runtime"))
    p = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30, env=env)
    assert p.stdout.strip() == f"{fifo}: not a regular file (a FIFO, socket or device); a recipe is a YAML file", p.stderr
    os.mkfifo(tmp_path / "t.jinja")
    r = _recipe(tmp_path, GRPO_BASE + "chat_template: t.jinja\n")
    p = subprocess.run([sys.executable, "-c", code, r], capture_output=True, text=True, timeout=30, env=env)
    assert p.stdout.startswith(f"{r}:3: chat_template file ") and "not a regular file" in p.stdout, p.stdout + p.stderr
