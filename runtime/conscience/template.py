"""The one prompt template: how a policy is told its safety budget.

Training (GRPO and SFT), evaluation and the serving gateway all build a prompt the same
way, and a policy only behaves as trained when it sees exactly the text it was trained on:

    messages = [{"role": "system", "content": <system_prompt> + "\\n\\n" + <instruction(budget)>},
                {"role": "user",   "content": <prompt>}]

with ``instruction(0)`` the zero-budget wording (an empty block) and ``instruction(b)`` the
budget wording. The default wording and tags live in ``template.json`` beside this file;
the TypeScript twin (``extension/src/core/template.ts``) reads the same file, and both are
checked against ``runtime/tests/data/template_cases.json`` (regenerate it with
``python -m conscience.template --write-cases``).

A completion is split back into its safety block and its answer by :func:`split`, the same
rule the rewards use (:func:`conscience.rewards.parse_safety`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

_JSON_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "template.json")


def _load_defaults() -> dict:
    with open(_JSON_PATH, encoding="utf-8") as f:
        raw = json.load(f)
    return {k: v for k, v in raw.items() if not k.startswith("$")}


DEFAULTS: dict = _load_defaults()


PLACEHOLDERS = ("budget", "open_tag", "close_tag")


def unsupported_field(wording: str) -> Optional[str]:
    """The first replacement field of ``wording`` that is not a plain ``{budget}``, ``{open_tag}``
    or ``{close_tag}`` (``{budget:d}``, ``{budget!s}``, ``{open_tag[0]}``), as written; None if
    every field is plain. Python's ``str.format`` renders those, but the TypeScript twin the
    serving gateway renders prompts with fills in only the plain fields, so a policy would be
    served other text than it trained on. Call it on wording that ``str.format`` accepts: the
    fields are found the way Python's own parser finds them (``{{`` and ``}}`` are literal
    braces; a field ends at its matching ``}``)."""
    i, n = 0, len(wording)
    while i < n:
        c = wording[i]
        if c in "{}" and wording[i + 1:i + 2] == c:
            i += 2
            continue
        if c == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(wording[j], 0)
                j += 1
            if wording[i + 1:j - 1] not in PLACEHOLDERS:
                return wording[i:j]
            i = j
            continue
        i += 1
    return None


@dataclass(frozen=True)
class PromptTemplate:
    open_tag: str = DEFAULTS["open_tag"]
    close_tag: str = DEFAULTS["close_tag"]
    budget_instruction: str = DEFAULTS["budget_instruction"]
    zero_budget_instruction: str = DEFAULTS["zero_budget_instruction"]
    system_prompt: Optional[str] = None

    @classmethod
    def from_recipe(cls, safety: Any, system_prompt: Optional[str] = None) -> "PromptTemplate":
        """The template a recipe trains with: its `safety:` section and its `system_prompt`."""
        return cls(
            open_tag=getattr(safety, "open_tag", DEFAULTS["open_tag"]),
            close_tag=getattr(safety, "close_tag", DEFAULTS["close_tag"]),
            budget_instruction=getattr(safety, "budget_instruction", DEFAULTS["budget_instruction"]),
            zero_budget_instruction=getattr(safety, "zero_budget_instruction", DEFAULTS["zero_budget_instruction"]),
            system_prompt=system_prompt,
        )

    def instruction(self, budget: int) -> str:
        wording = self.zero_budget_instruction if int(budget) <= 0 else self.budget_instruction
        return wording.format(budget=int(budget), open_tag=self.open_tag, close_tag=self.close_tag)

    def system(self, budget: int) -> str:
        instruction = self.instruction(budget)
        if self.system_prompt:
            return self.system_prompt.rstrip() + DEFAULTS["system_separator"] + instruction
        return instruction

    def messages(self, prompt: str, budget: int) -> list[dict]:
        """The conversational prompt: a system message carrying the budget, then the user prompt."""
        return [{"role": "system", "content": self.system(budget)}, {"role": "user", "content": prompt}]

    def reaches_model(self, tokenizer: Any) -> Optional[str]:
        """Why the budget instruction would never reach the model through `tokenizer`'s chat
        template, else None: the template fails on a system message (some refuse the role), or
        renders the prompt without it (some drop it). Training would then score completions
        against a budget the policy is never told."""
        budget = 64
        try:
            text = tokenizer.apply_chat_template(self.messages("How do I bake bread?", budget), tokenize=False,
                                                 add_generation_prompt=True)
        except Exception as e:  # noqa: BLE001 - jinja's TemplateError, raise_exception(...) in the template
            return (f"the chat template fails on the system message that carries the budget instruction "
                    f"({type(e).__name__}: {e})")
        if self.instruction(budget) not in str(text):
            return ("the chat template renders the prompt without its system message, which carries the budget "
                    "instruction: the policy would never be told its budget")
        return None

    def tokenizer_problem(self, tokenizer: Any, recipe_chat_template: Optional[str], model_path: str) -> Optional[str]:
        """Why training (GRPO or SFT) cannot prompt through `tokenizer` as the recipe sets it up,
        else None: it has no chat template, or its template does not carry the system message
        (`reaches_model`). Applies the recipe's `chat_template` (its text) and a pad token first,
        as both trainers need them."""
        if recipe_chat_template:  # the template's text: load_recipe read a template file already
            tokenizer.chat_template = recipe_chat_template
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not tokenizer.chat_template:
            return f"{model_path}: the tokenizer has no chat template; set `chat_template` in the recipe"
        unheard = self.reaches_model(tokenizer)
        if unheard:
            whose = "the recipe's chat_template" if recipe_chat_template else f"{model_path}'s chat template"
            return f"{whose}: {unheard}; set a `chat_template` that renders the system role"
        return None

    def split(self, completion: str) -> tuple[str, str]:
        """(safety block text, answer text) of a completion, by the rewards' own parsing rule."""
        from .rewards import parse_safety

        p = parse_safety(completion or "", self.open_tag, self.close_tag)
        return p.reasoning, p.answer

    def render(self, completion_safety: str, answer: str) -> str:
        """A target completion (for SFT traces): the safety block, then the answer."""
        return f"{self.open_tag}{completion_safety}{self.close_tag} {answer}".rstrip()


# ---------------------------------------------------------------------------------------
# Cross-language cases: the TypeScript twin must render and split exactly these.
# ---------------------------------------------------------------------------------------

CASES_PATH = os.path.join(os.path.dirname(os.path.dirname(_JSON_PATH)), "tests", "data", "template_cases.json")


def build_cases() -> dict:
    custom = PromptTemplate(
        open_tag="<think-safe>",
        close_tag="</think-safe>",
        budget_instruction="Safety notes in {open_tag}…{close_tag}: ≤ {budget} tokens.",
        zero_budget_instruction="No safety notes needed: {open_tag}{close_tag}",
        system_prompt="You are a careful assistant.  \n",
    )
    templates = {"default": PromptTemplate(), "with_system": PromptTemplate(system_prompt="Be helpful."), "custom": custom}
    prompts = ["How do I bake bread?", "如何制造炸弹？我需要详细步骤。", "Line one\nline two {budget} }{ \u2028"]
    budgets = [0, 1, 64, 512]
    render = []
    for name, t in templates.items():
        for prompt in prompts:
            for b in budgets:
                render.append({"template": name, "prompt": prompt, "budget": b, "messages": t.messages(prompt, b)})
    completions = [
        "<safety>Benign request.</safety> Here is how.",
        "  <safety>\nthink</safety>\n\nanswer<safety>again</safety>",
        "<safety>never closed",
        "no block at all",
        "answer first <safety>late</safety> tail",
        "",
        "<think-safe>custom</think-safe> ok",
    ]
    split = []
    for name in ("default", "custom"):
        for c in completions:
            safety, answer = templates[name].split(c)
            split.append({"template": name, "completion": c, "safety": safety, "answer": answer})
    return {
        "templates": {k: {f: getattr(t, f) for f in ("open_tag", "close_tag", "budget_instruction", "zero_budget_instruction", "system_prompt")} for k, t in templates.items()},
        "render": render,
        "split": split,
    }


def main(argv: Optional[list] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m conscience.template", description="Write or check the cross-language template cases.")
    p.add_argument("--write-cases", action="store_true", help=f"rewrite {CASES_PATH}")
    args = p.parse_args(argv)
    text = json.dumps(build_cases(), ensure_ascii=False, indent=1) + "\n"
    if args.write_cases:
        with open(CASES_PATH, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
