"""`chat_template: tmpl.jinja` is read as a file by the trainer (the validator checks the same
file, rule CC304); before, the trainer used the path string itself as the template."""

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "recipes", "demo", "tiny-cpu.yaml")
CACHE = os.path.join(ROOT, ".cache", "conscience-test-w0")
TEMPLATE = (
    "{# from a file #}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _run(tmp_path, chat_template):
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"  # the untrained tiny model: faster to build
    from conscience.tiny_model import ensure_tiny

    ensure_tiny()
    with open(DEMO) as f:
        r = yaml.safe_load(f)
    r.update({"max_steps": 1, "max_completion_length": 8, "max_prompt_length": 128, "max_train_samples": 4, "save_strategy": "steps",
              "save_steps": 1, "chat_template": chat_template})
    r["safety"] = dict(r.get("safety") or {}, budget_source="label")
    (tmp_path / "recipes").mkdir(exist_ok=True)
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text(yaml.safe_dump(r))
    out = tmp_path / "out"
    env = dict(os.environ, CONSCIENCE_CACHE=CACHE, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.path.join(ROOT, "runtime"))
    p = subprocess.run([sys.executable, "-m", "conscience.train", "--config", str(recipe), "--output_dir", str(out)], env=env,
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    return p, out


def test_a_template_file_is_read_relative_to_the_recipe(tmp_path):
    (tmp_path / "recipes" / "templates").mkdir(parents=True)
    (tmp_path / "recipes" / "templates" / "chatml.jinja").write_text(TEMPLATE)
    p, out = _run(tmp_path, "templates/chatml.jinja")
    assert p.returncode == 0, p.stderr[-3000:]
    # the tokenizer saved with the checkpoint carries the file's text
    ck = out / "checkpoint-1"
    saved = (ck / "chat_template.jinja").read_text() if (ck / "chat_template.jinja").exists() else json.loads((ck / "tokenizer_config.json").read_text())["chat_template"]
    assert saved == TEMPLATE


def test_template_text_and_missing_files(tmp_path):
    # Jinja text stays text; a file name that is not there is an error naming the recipe (the
    # trainer raises it inside the run, which then ends in run_finished failed)
    import pytest

    from conscience.recipe import read_chat_template as _chat_template

    recipe = str(tmp_path / "r.yaml")
    assert _chat_template(TEMPLATE, recipe) == TEMPLATE
    assert _chat_template("plain words.jinja and more {{ x }}", recipe).startswith("plain")
    with pytest.raises(ValueError, match=r"r\.yaml: chat_template file .*missing\.jinja"):
        _chat_template("templates/missing.jinja", recipe)


def test_sft_and_eval_recipes_read_template_files_too(tmp_path):
    # One rule for every recipe kind: the validator's CC304 file check, and the file's text
    # as the tokenizer's template in GRPO, SFT and eval alike.
    import pytest

    from conscience.eval import EvalError, load_eval_recipe
    from conscience.sft import load_sft_recipe

    (tmp_path / "chatml.jinja").write_text(TEMPLATE)
    sft = tmp_path / "sft.yaml"
    sft.write_text("kind: sft\nmodel_name_or_path: conscience/tiny\ndataset_name: conscience/safety_traces\nchat_template: chatml.jinja\n")
    assert load_sft_recipe(str(sft)).script_args.chat_template == TEMPLATE
    ev = tmp_path / "eval.yaml"
    ev.write_text("kind: eval\nmodel_name_or_path: conscience/tiny\nchat_template: chatml.jinja\n")
    assert load_eval_recipe(str(ev)).config.chat_template == TEMPLATE
    ev.write_text("kind: eval\nmodel_name_or_path: conscience/tiny\nchat_template: gone.jinja\n")
    with pytest.raises(EvalError, match=r"eval\.yaml:3: chat_template file .*gone\.jinja"):
        load_eval_recipe(str(ev))


def test_a_tokenizer_without_a_chat_template_is_named_with_its_model_folder():
    """GRPO and SFT check the tokenizer the same way (PromptTemplate.tokenizer_problem): no chat
    template names the model folder, a recipe's template is applied and a pad token set first."""
    os.environ["CONSCIENCE_CACHE"] = CACHE
    os.environ["CONSCIENCE_TINY_WARMUP"] = "0"
    from transformers import AutoTokenizer

    from conscience.template import PromptTemplate
    from conscience.tiny_model import ensure_tiny

    folder = ensure_tiny()
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = None
    template = PromptTemplate()
    assert template.tokenizer_problem(tok, None, "models/base") == (
        "models/base: the tokenizer has no chat template; set `chat_template` in the recipe")
    assert template.tokenizer_problem(tok, TEMPLATE, "models/base") is None
    assert tok.chat_template == TEMPLATE and tok.pad_token is not None
