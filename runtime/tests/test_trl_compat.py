"""conscience.trl_compat: the one module that knows how TRL 0.18 and TRL 1.x differ.

Runs on whichever stack the interpreter has (scripts/test.sh runs it on .venv, TRL 0.18.2, and
on .venv-trl1, TRL 1.x), and checks the answers against that stack's real classes.
"""

import inspect

import transformers
import trl
from trl import GRPOConfig, ModelConfig

from conscience import trl_compat
from conscience.recipe import load_recipe


def test_model_init_kwargs_use_the_installed_transformers_spelling(tmp_path):
    ma = ModelConfig(model_name_or_path="x", model_revision="main", attn_implementation="eager")
    kw = trl_compat.model_init_kwargs(ma, GRPOConfig(output_dir=str(tmp_path), use_cpu=True))
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    assert set(kw) == {"revision", "trust_remote_code", "attn_implementation", key}
    # The key is one that the installed from_pretrained understands.
    from transformers import PreTrainedModel

    src = inspect.getsource(PreTrainedModel.from_pretrained)
    assert key in src
    assert kw["revision"] == "main" and kw["attn_implementation"] == "eager" and kw["trust_remote_code"] is False


def test_trust_remote_code_is_read_where_the_installed_trl_keeps_it(tmp_path):
    ma = ModelConfig(model_name_or_path="x")
    ta = GRPOConfig(output_dir=str(tmp_path), use_cpu=True)
    owner = ma if hasattr(ma, "trust_remote_code") else ta
    assert trl_compat.is_trl1() == (owner is ta)
    owner.trust_remote_code = True
    assert trl_compat.trust_remote_code(ma, ta) is True


def test_a_recipe_for_the_other_line_fails_with_a_hint_naming_both_versions(tmp_path):
    other = "0.18.2" if trl_compat.is_trl1() else "1.16.0"
    key = "torch_dtype" if trl_compat.is_trl1() else "dtype"
    r = tmp_path / "r.yaml"
    r.write_text(f"model_name_or_path: x\nreward_funcs: [refusal]\n{key}: float32\nlaunch:\n  trl: {other}\n")
    try:
        load_recipe(str(r), ["--use_cpu", "true", "--output_dir", str(tmp_path / "o")])
    except ValueError as e:
        msg = str(e)
    else:
        raise AssertionError("the other line's key was accepted")
    assert f"{key} (line 3)" in msg
    assert f"launch.trl: {other}" in msg and f"runs TRL {trl.__version__}" in msg


def test_line_mismatch():
    assert trl_compat.line_mismatch(None, "1.16.0") is None
    assert trl_compat.line_mismatch("1.12.0", "1.16.0") is None
    assert trl_compat.line_mismatch("0.18", "0.18.2") is None
    assert "runs TRL 1.16.0" in trl_compat.line_mismatch("0.18.2", "1.16.0")
    assert "runs TRL 0.18.2" in trl_compat.line_mismatch("1.16.0", "0.18.2")


def test_sync_ref_model_without_a_reference_model_is_refused_on_trl1_only(tmp_path):
    # beta 0 keeps no reference model: TRL 1.x's GRPOTrainer refuses sync_ref_model then, after
    # the model is loaded; TRL 0.18 ignores it. Refused at load on 1.x, with the key's line (CC237)
    r = tmp_path / "r.yaml"
    r.write_text("model_name_or_path: x\nreward_funcs: [refusal]\nbeta: 0.0\nsync_ref_model: true\n")
    args = ["--use_cpu", "true", "--output_dir", str(tmp_path / "o")]
    if not trl_compat.is_trl1():
        load_recipe(str(r), args)
        return
    try:
        load_recipe(str(r), args)
    except ValueError as e:
        msg = str(e)
    else:
        raise AssertionError("sync_ref_model with beta 0 was accepted on TRL 1.x")
    assert msg.startswith(f"{r}:4: sync_ref_model: true, but beta is 0") and f"TRL {trl.__version__} refuses it" in msg, msg
