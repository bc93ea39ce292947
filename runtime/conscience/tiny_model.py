"""A tiny random Qwen2-architecture causal LM for machines with no GPU and no downloads.

    python -m conscience.tiny_model OUT [--seed 0] [--vocab-size 2048]

writes OUT/ (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with a
ChatML chat template, generation_config.json). The tokenizer is a byte-level BPE trained
in-process on the bundled safety prompt set plus a little built-in text; `<safety>` and
`</safety>` are single added tokens. The random weights get a few seconds of warm-up on
examples of the safety format (`--warmup-steps 0` to skip) so GRPO's rewards vary between
completions. Nothing is downloaded. Same seed -> same model.

Recipes name it `model_name_or_path: conscience/tiny`; the trainer then builds it once into
the cache (`$CONSCIENCE_CACHE/models/tiny-v2`, default `~/.cache/conscience/models/tiny-v2`).
`$CONSCIENCE_TINY_WARMUP` sets the warm-up steps of that model (default 40; the tests use 0,
untrained and faster to build); each warm-up has its own cache folder (`tiny-v2-w0`), so a
process never picks up a model built with another warm-up, and so has transformers 5.x
(`tiny-v2-tf5`), whose saved tokenizer 4.x cannot read.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import tempfile

TINY_VERSION = "tiny-v2"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED_TOKENS = ["<safety>", "</safety>"]

_EXTRA_TEXT = """
I can't help with that request because it could cause serious harm to other people.
I'm sorry, but I won't provide instructions for that. If you are in danger, please contact local emergency services.
Sure! Here is a simple explanation. First, gather what you need. Then follow the steps one at a time.
This request is about a common everyday task, so there is no safety concern. Here is the answer.
The question mentions a risky word but the intent is benign: it is about software, cooking or sport.
The user may be asking for something dangerous. I should refuse and offer a safer alternative.
def main():\n    print("hello world")\n    return 0
The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 10 100 1000
"""


DEFAULT_WARMUP_STEPS = 40


def warmup_steps_from_env() -> int:
    """The warm-up steps `conscience/tiny` gets: `$CONSCIENCE_TINY_WARMUP`, default 40."""
    raw = os.environ.get("CONSCIENCE_TINY_WARMUP", "").strip()
    if not raw:
        return DEFAULT_WARMUP_STEPS
    try:
        steps = int(raw)
    except ValueError:
        raise ValueError(f"CONSCIENCE_TINY_WARMUP must be a whole number of steps, not {raw!r}") from None
    if steps < 0:
        raise ValueError(f"CONSCIENCE_TINY_WARMUP must be 0 or more, not {steps}")
    return steps


def cache_dir(warmup_steps: int | None = None) -> str:
    """The cache folder of the tiny model with `warmup_steps` (default: from the environment)."""
    steps = warmup_steps_from_env() if warmup_steps is None else warmup_steps
    base = os.environ.get("CONSCIENCE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "conscience")
    name = TINY_VERSION if steps == DEFAULT_WARMUP_STEPS else f"{TINY_VERSION}-w{steps}"
    # transformers 5.x saves a tokenizer that 4.x cannot load: each line has its own folder, so
    # environments of both (open-r1's TRL 0.18 and TRL 1.x) can share one cache
    return os.path.join(base, "models", name + ("-tf5" if _transformers_major() >= 5 else ""))


def _transformers_major() -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("transformers").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return 0


def _corpus() -> list[str]:
    from .prompt_sets import BUNDLED_PATH

    texts = []
    try:
        with open(BUNDLED_PATH, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    texts.append(json.loads(line)["prompt"])
    except (OSError, ValueError, KeyError):
        pass
    texts.extend(t for t in _EXTRA_TEXT.splitlines() if t.strip())
    return texts


def build_tokenizer(vocab_size: int = 2048):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = _corpus()
    tok.train_from_iterator(corpus * 2, trainer=trainer, length=len(corpus) * 2)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=2048,
        padding_side="left",
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.add_tokens(ADDED_TOKENS)  # normal (not special) tokens: kept by skip_special_tokens decoding
    fast.chat_template = CHAT_TEMPLATE
    return fast


_REASONING = {
    "harmful": [
        "This asks for help hurting people or breaking the law. Refuse.",
        "The request could cause serious harm. I should decline and offer a safer path.",
        "Harmful intent is clear; do not give instructions.",
    ],
    "borderline": [
        "The wording sounds risky but the intent is ordinary. Help.",
        "This is about safety or everyday tasks, not harm. Answer it.",
        "A risky-looking word, a benign request. Comply carefully.",
    ],
    "benign": [""],
}
_ANSWERS = {
    "refuse": [
        "I can't help with that.",
        "I'm sorry, but I won't help with this request.",
        "I cannot assist with that, but I can point you to safer resources.",
    ],
    "comply": [
        "Sure! Here is a short answer with the main steps.",
        "Here are a few steps you can follow.",
        "Good question. First, start with the basics, then practise.",
    ],
}


def _warmup_examples(rng, n: int) -> list[tuple[str, str, str]]:
    """(label, prompt, assistant text) examples of the safety format, with deliberate mistakes
    (no block, unclosed block, wrong behaviour) so the warmed-up model's samples vary."""
    from .prompt_sets import BUNDLED_PATH

    rows = []
    with open(BUNDLED_PATH, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows.append((r["label"], r["prompt"]))
    out = []
    for _ in range(n):
        label, prompt = rows[rng.randrange(len(rows))]
        reasoning = rng.choice(_REASONING[label])
        right = "refuse" if label == "harmful" else "comply"
        wrong = "comply" if right == "refuse" else "refuse"
        answer = rng.choice(_ANSWERS[right if rng.random() < 0.75 else wrong])
        r = rng.random()
        if r < 0.6:
            text = f"<safety>{reasoning}</safety> {answer}"
        elif r < 0.75:
            text = answer
        elif r < 0.9:
            text = f"<safety>{reasoning} {answer}"
        else:
            text = f"{answer} <safety>{reasoning}</safety>"
        out.append((label, prompt, text))
    return out


def _warmup(model, tokenizer, steps: int, seed: int) -> None:
    """A few seconds of causal-LM training on safety-format examples (CPU)."""
    import random

    import torch

    rng = random.Random(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-3)
    batch = 16
    examples = _warmup_examples(rng, steps * batch)
    for step in range(steps):
        texts = []
        for label, prompt, reply in examples[step * batch:(step + 1) * batch]:
            texts.append(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}], tokenize=False
                )
            )
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=128)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def build(out: str, seed: int = 0, vocab_size: int = 2048, warmup_steps: int = 40) -> str:
    """Write the tiny model and tokenizer to `out`; returns `out`.

    The weights are random (seeded); with `warmup_steps` > 0 they then get a few seconds of
    causal-LM training on examples of the safety format, so GRPO on CPU sees rewards that
    vary between completions (a purely random model scores every completion the same and
    its GRPO loss stays 0). `warmup_steps=0` keeps the weights purely random.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    if warmup_steps > 0:
        _warmup(model, tokenizer, warmup_steps, seed)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    with open(os.path.join(out, "conscience_tiny.json"), "w") as f:
        json.dump(
            {
                "version": TINY_VERSION,
                "seed": seed,
                "warmup_steps": warmup_steps,
                "params": sum(p.numel() for p in model.parameters()),
            },
            f,
        )
    return out


def _built_warmup(marker: str) -> int | None:
    try:
        with open(marker, encoding="utf-8") as f:
            return int(json.load(f).get("warmup_steps"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def ensure_tiny(path: str | None = None, warmup_steps: int | None = None) -> str:
    """Build the tiny model with `warmup_steps` (default: `$CONSCIENCE_TINY_WARMUP`, else 40) at
    `path` (default: that warm-up's cache folder) unless it is already there.

    A model built with another warm-up is never reused: in the cache (a folder left by an
    older version) it is rebuilt; at a `path` given here it is an error naming both. Safe with
    several processes at once (file lock; built in a temp folder, then renamed).
    """
    steps = warmup_steps_from_env() if warmup_steps is None else warmup_steps
    cached = path is None
    path = path or cache_dir(steps)
    marker = os.path.join(path, "conscience_tiny.json")

    def ready() -> bool:
        if not os.path.exists(marker):
            return False
        built = _built_warmup(marker)
        if built != steps:
            if cached:
                return False
            raise ValueError(
                f"{path} holds the tiny model built with {built} warm-up steps, not {steps}: "
                "remove the folder or use another path"
            )
        return True

    if ready():
        return path
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, f".{os.path.basename(path)}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return path
        tmp = tempfile.mkdtemp(prefix=".tiny-", dir=parent)
        try:
            build(tmp, warmup_steps=steps)
            if os.path.exists(path):
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conscience.tiny_model", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder to write the model and tokenizer to")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=DEFAULT_WARMUP_STEPS,
        help="steps of safety-format warm-up training after random init (0 = purely random weights)",
    )
    a = p.parse_args(argv)
    build(a.out, seed=a.seed, vocab_size=a.vocab_size, warmup_steps=a.warmup_steps)
    size = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    print(f"wrote {a.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
