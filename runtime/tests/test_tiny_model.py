"""`python -m conscience.tiny_model OUT`: a small random Qwen2 model with an in-process tokenizer."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_cli_writes_a_loadable_tiny_chat_model(tmp_path):
    out = tmp_path / "tiny"
    proc = subprocess.run(
        [sys.executable, "-m", "conscience.tiny_model", str(out), "--warmup-steps", "0"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),  # nothing may be downloaded
    )
    assert proc.returncode == 0, proc.stderr
    size = sum(os.path.getsize(out / f) for f in os.listdir(out))
    assert 100_000 < size < 8_000_000, size
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["architectures"] == ["Qwen2ForCausalLM"]
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tok.tokenize("<safety>x</safety>")[0] == "<safety>"  # the tags are single tokens
    text = tok.apply_chat_template(
        [{"role": "system", "content": "budget 8"}, {"role": "user", "content": "How do I kill a Python process?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<|im_start|>assistant\n")
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] == enc["input_ids"].shape[1] + 5 or tok.eos_token_id in gen[0].tolist()


def test_same_seed_same_weights(tmp_path):
    from conscience.tiny_model import build

    a = build(str(tmp_path / "a"), seed=3, warmup_steps=0)
    b = build(str(tmp_path / "b"), seed=3, warmup_steps=0)
    ma = AutoModelForCausalLM.from_pretrained(a)
    mb = AutoModelForCausalLM.from_pretrained(b)
    for (na, pa), (nb, pb) in zip(ma.named_parameters(), mb.named_parameters()):
        assert na == nb and torch.equal(pa, pb), na


def test_each_warm_up_has_its_own_cache_and_a_mismatch_is_named(tmp_path, monkeypatch):
    # Tests build the untrained model (CONSCIENCE_TINY_WARMUP=0); a trainer that asks for the
    # user's (warmed) model must never be handed it from the same cache.
    from conscience.tiny_model import cache_dir, ensure_tiny

    monkeypatch.setenv("CONSCIENCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONSCIENCE_TINY_WARMUP", "0")
    raw = ensure_tiny()
    assert raw == cache_dir(0)
    with open(os.path.join(raw, "conscience_tiny.json")) as f:
        assert json.load(f)["warmup_steps"] == 0
    monkeypatch.delenv("CONSCIENCE_TINY_WARMUP")
    assert cache_dir() == cache_dir(40) != raw
    with pytest.raises(ValueError, match="built with 0 warm-up steps, not 40"):
        ensure_tiny(raw)
    monkeypatch.setenv("CONSCIENCE_TINY_WARMUP", "forty")
    with pytest.raises(ValueError, match="CONSCIENCE_TINY_WARMUP must be a whole number"):
        ensure_tiny()


def test_a_stale_cache_folder_with_another_warm_up_is_rebuilt(tmp_path, monkeypatch):
    # A cache written before warm-ups had their own folders may hold the untrained model
    # where the warmed one belongs: it is rebuilt, not reused.
    from conscience.tiny_model import cache_dir, ensure_tiny

    monkeypatch.setenv("CONSCIENCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONSCIENCE_TINY_WARMUP", "1")
    stale = cache_dir(1)
    ensure_tiny(stale, warmup_steps=0)
    assert ensure_tiny() == stale
    with open(os.path.join(stale, "conscience_tiny.json")) as f:
        assert json.load(f)["warmup_steps"] == 1
