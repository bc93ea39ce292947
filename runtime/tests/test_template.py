"""The one prompt template: training renders it, and the cases the TypeScript twin checks are current."""

import json

from conscience.prompt_sets import build_messages
from conscience.recipe import SafetyConfig
from conscience.template import CASES_PATH, PromptTemplate, build_cases


def test_cases_file_is_current():
    # A change to template.json or to the rendering must regenerate the cases the TS side reads.
    with open(CASES_PATH, encoding="utf-8") as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(build_cases())), "run: python -m conscience.template --write-cases"


def test_training_renders_the_template_exactly():
    # What the GRPO trainer puts in front of the policy is the template's own rendering.
    safety = SafetyConfig()
    for budget in (0, 7, 512):
        row = {"prompt": "How do I pick a lock?", "budget": budget}
        assert build_messages(row, safety, "Be helpful.") == PromptTemplate(system_prompt="Be helpful.").messages(row["prompt"], budget)
    got = build_messages({"prompt": "hi", "budget": 0}, safety)
    assert got[0] == {"role": "system", "content": "Write an empty safety block <safety></safety> and then answer."}
    assert "about 32 tokens" in build_messages({"prompt": "hi", "budget": 32}, safety)[0]["content"]


def test_recipe_wording_overrides_reach_the_prompt():
    safety = SafetyConfig(open_tag="<s>", close_tag="</s>", budget_instruction="Use {budget} in {open_tag}{close_tag}.")
    msgs = build_messages({"prompt": "q", "budget": 5}, safety)
    assert msgs[0]["content"] == "Use 5 in <s></s>."
    assert PromptTemplate.from_recipe(safety).split("<s>why</s> answer") == ("why", "answer")


def test_split_agrees_with_rewards_parsing():
    t = PromptTemplate()
    assert t.split("<safety>risky?</safety> Sure.") == ("risky?", "Sure.")
    assert t.split("<safety>never closed") == ("never closed", "")
    assert t.split("plain answer") == ("", "plain answer")
