"""The models the GPU scripts measure on, built in-process (nothing is downloaded).

`build_model(out, tiny)` writes either the project's tiny model (CPU smoke runs) or a
random-weight model of Qwen2.5-0.5B's shape (hidden 896, 24 layers, vocabulary 151,936) with
the tiny model's tokenizer, so timings are realistic without weights from a hub. One place for
the shape, used by sft_bench.py, trl1_grpo.py, eval_bench.py and zero.py.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime")))

QWEN25_05B = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)


def build_model(out: str, tiny: bool, *, dtype: str = "float32", warmup_steps: int | None = None,
                generation: dict | None = None) -> str:
    """Write the model and its tokenizer to `out`; returns `out`.

    tiny: the tiny model (`warmup_steps` as `conscience.tiny_model.ensure_tiny`), in float32;
    else the 0.5B-shape random model (seed 0) in `dtype`. `generation`: GenerationConfig keys to
    save with it (EOS and pad default to the tokenizer's); None keeps the model's own.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from conscience.eval import dtype_kwargs
    from conscience.tiny_model import build_tokenizer, ensure_tiny

    if tiny:
        src = ensure_tiny(warmup_steps=warmup_steps)
        model = AutoModelForCausalLM.from_pretrained(src, **dtype_kwargs(torch.float32))
        tok = AutoTokenizer.from_pretrained(src)
    else:
        tok = build_tokenizer()
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_05B, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
        model = model.to(getattr(torch, dtype))
    if generation is not None:
        model.generation_config = GenerationConfig(**{"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, **generation})
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
