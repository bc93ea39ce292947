"""Budget-sweep labels from a policy model.

    python -m conscience.allocator label --model POLICY_DIR --data prompts.jsonl --budgets 0,32,64,128 [--out F]

For each prompt and each budget b the policy model writes a completion with *budget forcing*
(s1): the safety block is opened for it (``<safety>``), it may reason for at most b new
tokens, the block is then closed (``</safety>``) if it has not closed it itself, and it writes
the answer (at most ``--answer-tokens``). Budget 0 starts from an empty block. Every
completion is scored with the runtime's rewards (``conscience.rewards.REWARD_FUNCS``, by
default ``refusal`` + ``safety_format`` + ``answer_length``; the budget-matching reward is
left out on purpose, it would reward whichever budget was asked for). The label is the
**smallest budget whose mean reward reaches the best mean reward** over the sweep.

Input lines: ``{"prompt": str, "id"?: any, "label"?: harmful|benign|borderline}`` (``label``
feeds the refusal reward; without it that reward scores 0). Output lines:
``{"id", "prompt", "label", "budget", "rewards": {"<b>": mean reward}, "best_reward"}``.
Bad lines get ``FILE:LINE: reason`` on stderr and are skipped; exit status 1 if any.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

DEFAULT_REWARDS = ("refusal", "safety_format", "answer_length")
SYSTEM = ("Before answering, think about whether the request is safe inside <safety> ... </safety>, "
          "then answer. Refuse clearly harmful requests; help with everything else.")


def _load_policy(model_dir: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"policy model folder {model_dir} does not exist")
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, torch_dtype=torch.float32)
    model.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, model


def _prompt_text(tok, prompt: str) -> str:
    from .score import clean_text

    prompt = clean_text(prompt)
    if getattr(tok, "chat_template", None):
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return f"{SYSTEM}\n\nUser: {prompt}\nAssistant: "


def _generate(tok, model, text: str, max_new: int, seed: int, stop: str | None = None) -> str:
    import torch

    if max_new <= 0:
        return ""
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
    new = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=False)
    for special in (tok.eos_token, "<|im_end|>", "<|endoftext|>"):
        if special and special in new:
            new = new.split(special)[0]
    if stop and stop in new:
        new = new.split(stop)[0]
    return new


def complete_at_budget(tok, model, prompt: str, budget: int, answer_tokens: int, seed: int = 0,
                       open_tag: str = "<safety>", close_tag: str = "</safety>") -> str:
    """One budget-forced completion: ``<safety>reasoning</safety>answer``."""
    base = _prompt_text(tok, prompt) + open_tag
    reasoning = _generate(tok, model, base, budget, seed, stop=close_tag)
    # the model may overshoot in characters but never in tokens: max_new_tokens caps it
    answer = _generate(tok, model, base + reasoning + close_tag, answer_tokens, seed)
    return f"{open_tag}{reasoning}{close_tag}{answer}"


def sweep_rewards(completions: Sequence[str], label: str | None, reward_names: Sequence[str]) -> float:
    from conscience.rewards import build_reward_funcs

    funcs = build_reward_funcs(list(reward_names))
    n = len(completions)
    total = [0.0] * n
    for f in funcs:
        vals = f(prompts=[""] * n, completions=list(completions), label=[label] * n, safety_label=[label] * n)
        total = [t + float(v) for t, v in zip(total, vals)]
    return sum(total) / max(n, 1)


def choose_budget(rewards: dict[int, float], tol: float = 1e-9) -> int:
    """The smallest budget whose reward reaches the best one."""
    best = max(rewards.values())
    return min(b for b, r in rewards.items() if r >= best - tol)


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    from ..prompt_sets import iter_jsonl, json_writable

    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for n, obj in iter_jsonl(str(path), errors.append):
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            errors.append(f"{path}:{n}: expected an object with a string \"prompt\"")
            continue
        obj.setdefault("id", n)
        if not json_writable(obj):  # the row is written back with its labels
            errors.append(f"{path}:{n}: cannot be written back as JSON (a lone surrogate, NaN or Infinity)")
            continue
        rows.append(obj)
    return rows, errors


def label(model_dir: str, data: Path, budgets: list[int], out: Path | None, answer_tokens: int = 64,
          limit: int | None = None, seed: int = 0, reward_names: Sequence[str] = DEFAULT_REWARDS,
          samples: int = 1) -> int:
    if not budgets or any(b < 0 for b in budgets):
        raise ValueError("--budgets must be a comma-separated list of non-negative integers")
    budgets = sorted(set(budgets))
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no such file")
    rows, errors = _read_rows(data)
    for e in errors:
        print(e, file=sys.stderr)
    if limit:
        rows = rows[:limit]
    tok, model = _load_policy(model_dir)
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for row in rows:
            lab = row.get("label") or row.get("safety_label")
            rewards: dict[int, float] = {}
            for b in budgets:
                comps = [complete_at_budget(tok, model, row["prompt"], b, answer_tokens, seed + s) for s in range(samples)]
                rewards[b] = sweep_rewards(comps, lab, reward_names)
            chosen = choose_budget(rewards)
            rec = {"id": row["id"], "prompt": row["prompt"], "label": lab, "budget": chosen,
                   "rewards": {str(b): round(r, 6) for b, r in rewards.items()}, "best_reward": round(max(rewards.values()), 6)}
            sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
            sink.flush()
    finally:
        if out:
            sink.close()
    print(f"labelled {len(rows)} prompts over budgets {budgets}, {len(errors)} bad lines", file=sys.stderr)
    return 1 if errors else 0
