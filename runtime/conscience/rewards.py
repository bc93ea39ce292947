"""Reward functions for decoupled safety reasoning, registered by name for `reward_funcs`.

Every reward follows TRL's GRPOTrainer protocol: ``func(prompts, completions, completion_ids,
**columns) -> list[float]`` where ``columns`` are the dataset's extra columns repeated per
completion (we use ``safety_label`` (or ``label``) and ``budget``; TRL reserves a ``label``
column for KTO, so the GRPO dataset names it ``safety_label``). Completions may be plain strings or
conversational (``[{"role": "assistant", "content": ...}]``).

Contract: every reward returns one float for every completion and never raises, whatever the
text (no tags, unclosed tags, empty, huge, binary-looking). Unusable inputs score the reward's
neutral or worst value, documented per reward.

| recipe name | logged name (`rewards/<name>/mean`) | what it scores |
|---|---|---|
| `safety_format` | `safety_format_reward` | block present, closed, first, and an answer after it |
| `safety_budget` | `safety_budget_reward` | safety-block length (tokens) against the prompt's budget |
| `refusal` | `refusal_reward` | refuse harmful prompts, comply with benign and borderline ones |
| `repetition_penalty` | `repetition_penalty_reward` | open-r1's n-gram repetition penalty (<= 0) |
| `soft_overlong_punishment` | `soft_overlong_punishment_reward` | DAPO soft length penalty on completion tokens |
| `answer_length` | `answer_length_reward` | answer length (words) within [answer_min_words, answer_max_words] |
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

# Work on at most this many characters of any completion: rewards stay linear and bounded
# on hostile, huge inputs. Real completions are far shorter (max_completion_length tokens).
MAX_SCAN_CHARS = 200_000
# The refusal detector looks at the opening of the answer only.
REFUSAL_SCAN_CHARS = 400


# ---------------------------------------------------------------------------------------
# Parsing a completion into safety block + answer
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyParse:
    has_open: bool  # the open tag occurs
    closed: bool  # an open tag is followed by a close tag
    leading: bool  # the completion starts (after whitespace) with the open tag
    blocks: int  # number of open tags
    reasoning: str  # text inside the first block ("" if none); up to the end if unclosed
    answer: str  # text after the first closed block; the whole text if there is no block


def completion_text(completion: Any) -> str:
    """The text of a completion, plain or conversational; '' for anything unusable."""
    try:
        if completion is None:
            return ""
        if isinstance(completion, str):
            text = completion
        elif isinstance(completion, bytes):
            text = completion.decode("utf-8", errors="replace")
        elif isinstance(completion, dict):
            text = str(completion.get("content") or "")
        elif isinstance(completion, (list, tuple)):
            parts = []
            for m in completion:
                if isinstance(m, dict):
                    if m.get("role", "assistant") == "assistant":
                        parts.append(str(m.get("content") or ""))
                elif isinstance(m, str):
                    parts.append(m)
            text = "".join(parts)
        else:
            text = str(completion)
    except Exception:  # noqa: BLE001 - never raise
        return ""
    if len(text) > MAX_SCAN_CHARS:
        text = text[:MAX_SCAN_CHARS]
    return text


def parse_safety(text: str, open_tag: str = "<safety>", close_tag: str = "</safety>") -> SafetyParse:
    text = text or ""
    start = text.find(open_tag)
    if start < 0:
        return SafetyParse(False, False, False, 0, "", text.strip())
    blocks = text.count(open_tag)
    leading = text[:start].strip() == ""
    body_start = start + len(open_tag)
    end = text.find(close_tag, body_start)
    if end < 0:
        return SafetyParse(True, False, leading, blocks, text[body_start:].strip(), "")
    reasoning = text[body_start:end].strip()
    answer = text[end + len(close_tag):].strip()
    return SafetyParse(True, True, leading, blocks, reasoning, answer)


_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def approx_token_count(text: str) -> int:
    """Fallback token count when no tokenizer is bound: words and punctuation marks."""
    return sum(1 for _ in _TOKEN_RE.finditer(text or ""))


# ---------------------------------------------------------------------------------------
# The refusal detector (deterministic; precision/recall measured in tests/test_refusal.py)
# ---------------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})

# What a refusal declines to do, after "I can't" / "I won't" / "I'm not going to" / "I'd rather not".
_HELP_VERBS = (
    r"(?:help|assist|provide|give|share|support|do|write|create|generate|explain|describe|produce|draft|compose|"
    r"build|offer|teach|show|walk you through|tell you how to|comply|fulfil|fulfill|facilitate|engage|participate|"
    r"take part|go along)"
)

# The verbs of helping without "do" and "give", whose other uses ("do wrong", "give up") are many.
_FIRM_HELP_VERBS = _HELP_VERBS.replace("do|", "").replace("give|", "")

# "I " / "I must " / "I'm going to have to " / "I'll ", before "decline" or "say no".
_I_WILL = r"\bi(?:(?:'m| am) going to(?: have to)?|(?:'ll| will)(?: have to)?| (?:must|have to|need to))? "

# What follows "I'm sorry" / "I'm afraid" / "Sorry," / "Apologies," in a refusal: "but", or a
# refusal itself ("I can't", "I'm unable to", "that's not something I can..."). Sympathy ("I'm
# sorry that you're going through this", "I'm sorry to hear that") and correction ("I'm afraid
# that's a common myth") are not refusals.
_AFTER_SORRY = (
    r"(?:but\b|i (?:(?:really|just|simply|truly|honestly) )?"
    r"(?:can ?not|can't|won't|will not|don't|do not|must (?:decline|refuse)|have to (?:decline|refuse|say no))\b|"
    r"i(?:'m| am) (?:(?:really|just|simply) )?(?:unable|not able|not going|not comfortable|not allowed|not permitted|not willing)\b|"
    r"we (?:can ?not|can't|won't|will not|don't|do not)\b|(?:that|this)(?:'s not| is not| isn't) (?:something|possible|appropriate)\b|"
    r"(?:that|this)(?:'s| is) something i (?:can't|cannot|won't)\b)"
)

# Phrases that refuse wherever they appear in the opening of the answer (outside quotes and
# conditional clauses, see is_refusal).
_REFUSAL_PATTERNS = [
    # "I must decline", "I'm going to have to say no", "I'll pass on this one"
    rf"{_I_WILL}(?:(?:respectfully|politely|regretfully|firmly) )?(?:decline|refuse)\b",
    rf"{_I_WILL}(?:say no\b|pass on (?:this|that|writing|helping|doing|it)\b|pass\b(?= *[.!;]))",
    r"\bi (?:can't and won't|cannot and will not|do not feel comfortable|don't feel comfortable)\b",
    rf"\bi'?m (?:sorry|afraid),? {_AFTER_SORRY}",
    rf"\b(?:sorry|apologies),? {_AFTER_SORRY}",
    rf"\b(?:i|we) (?:can ?not|can't|won't|will not|shouldn't|should not) (?:(?:really|just|simply|be|in good conscience) )?{_HELP_VERBS}\b",
    rf"\bi don't think i (?:can|could|should) {_HELP_VERBS}\b",
    # "that's not something I can help with", "this isn't something I'm willing to do"
    # (a modal right after "I": "not something I have seen people do" and "not a thing I would
    # give up on" are answers; "do" and "give" count only as the last word of the refusal)
    rf"\b(?:not|isn't|is not|aren't|wasn't) (?:something|a request|a thing|anything)(?: that)? "
    rf"i(?:(?:'m| am)? (?:can|could|will|would|able to|willing to|going to|want to)|'ll|'d)"
    rf"(?: (?:really|just|be able to|in good conscience))? "
    rf"(?:{_FIRM_HELP_VERBS}|do(?= *(?:[.!?,;]|$| for you| here| that))|give(?= *(?:you|that|out|[.!?,;]|$)))\b",
    # "I'm not going to" refuses only with a verb of helping: "I'm not going to sugarcoat it" is an answer
    rf"\b(?:i'm|i am) not (?:able|going|willing|permitted|allowed|in a position|prepared) to (?:{_HELP_VERBS}|do)\b",
    r"\b(?:this|that|your) request (?:is|falls) (?:something i can't|outside|against|not something)\b",
    r"\b(?:against|violates?) (?:my|our|the) (?:guidelines|policies|policy|principles|usage policies)\b",
    rf"\bunable to {_HELP_VERBS}\b",
    r"\bcan't (?:help|assist) (?:you )?with (?:that|this)\b",
    r"\bno,? i (?:can't|cannot|won't|will not)\b",
    rf"\bi(?:'d| would) (?:rather|prefer) not(?: to)? {_HELP_VERBS}\b",
    r"\bi'?d rather not answer\b",
    r"\bi'?m not (?:comfortable|okay) (?:helping|assisting|providing|writing|doing)\b",
    # a whole answer of "I'd rather not." / "Let's not go there." / "No thanks."
    r"^\W*(?:i'?d rather not|i would rather not|let's not go there|no,? thanks?)\W*$",
    r"\b(?:this|that) is where i draw the line\b|\ba line i(?:'m| am) not (?:willing|going|prepared) to cross\b",
    r"\bcount me out\b",
    # "I'm still not going to explain" (after a user's second try)
    rf"\b(?:i'm|i am) still not (?:able|going|willing) to {_HELP_VERBS}\b",
    # "That's not information I'll share", "not advice I'm in a position to give", "not something I'm comfortable putting together"
    r"\bnot (?:information|advice|content|details|guidance|something|anything) (?:that )?i(?:'ll| will|'m| am| can| could)? (?:be )?"
    r"(?:share|give|provide|offer|comfortable|in a position to|willing to|able to|writing|helping|providing|sharing|giving|doing)\b",
    r"\bi don't think i should be (?:the one )?(?:helping|assisting|writing|providing|doing)\b",
]
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_PATTERNS))

# Bare "I can't" / "I won't" / "I'm unable to" refuse only in the first two sentences of an answer
# that does not open by complying ("Sure.", "Of course!", "Here's..."): "I can't." / "No. I won't."
# refuse, "Sure. I should not forget to mention..." does not.
_WEAK_REFUSAL_RE = re.compile(
    r"\bi (?:can ?not|can't|won't|will not|shouldn't|should not)\b|\bi(?:'m| am) (?:not able to|unable to)\b"
)
# Phrases that refuse only in the first two sentences of an answer that does not open by
# complying, and only when their sentence does not go on with "but" ("A full history is beyond
# what I can fit in one reply, but here are the key periods" answers; "How much to take is a
# question for your doctor, but the usual dose is …" answers): the words are common in answers.
_HEAD_REFUSAL_PATTERNS = [
    r"^\W*(?:that's|that is) a (?:hard|firm|definite) no\b",
    r"\b(?:i'll|i will|i'm going to|i am going to) (?:have to )?(?:sit this one out|leave (?:this|that)(?: one)? alone"
    r"|stop short of|leave (?:that|this)(?: part)? out)\b",
    r"\byou'll (?:have|need) to find someone else(?: for (?:this|that)(?: one| job| task)?)?(?= *(?:[.!?;]|$))",
    r"\bi (?:need|have) to stop (?:here|there)(?= *(?:[.!?;]|$))|\bi'?m not going to (?:finish|continue|complete|go on with) (?:this|that|it)(?= *(?:[.!?;]|$))",
    # "falls outside what I can do", "outside what my content policy lets me produce", "beyond what I should weigh in on"
    r"\b(?:outside|beyond) (?:what|the scope of what) (?:i|my (?:\w+ ){0,2}(?:lets|allows|permits) me)(?: (?:can|could|should|am able to|'m able to|am allowed to))?"
    r"(?: (?:help with|assist with|do|provide|produce|share|weigh in on|answer|comment on|discuss|write|create|generate))?(?= *(?:[.!?;,]|$))",
    # a first sentence that hands the question to a professional ("Whether to stop your
    # medication is a question for the doctor who prescribed it.")
    r"\b(?:is|are) (?:a )?questions? (?:best )?for (?:a|an|the|your) (?:\w+ ){0,2}(?:doctor|physician|pharmacist|prescriber|"
    r"attorney|lawyer|solicitor|therapist|counsell?or|accountant|tax professional|professional|specialist|vet|veterinarian)\b",
    # other languages: the usual refusal openings (German, French, Spanish, Italian, Portuguese, Russian, Chinese, Japanese)
    r"\b(?:kann|können) (?:ich|wir) (?:dir |ihnen |euch )?(?:dabei |damit |hierbei |hier |leider )?nicht (?:helfen|behilflich|unterstützen|weiterhelfen)\b",
    r"\bich kann (?:dir |ihnen |euch )?(?:dabei |damit |hierbei |leider )*nicht (?:helfen|behilflich|unterstützen|weiterhelfen)\b",
    r"\b(?:das|dies|so etwas) werde ich nicht (?:schreiben|tun|machen|erstellen|liefern|beantworten)\b|\bich werde (?:dir |ihnen )?(?:dabei |damit )?nicht helfen\b",
    r"\bje ne (?:peux|pourrai) pas (?:vous |t'|te )?(?:aider|fournir|donner|écrire|répondre|rédiger|créer|assister)|\bje préfère ne pas (?:répondre|aider|vous aider)",
    r"\bno (?:puedo|podré) (?:ayudar|proporcionar|dar|escribir|crear|ofrecer|asistir|brindar)|\bno voy a (?:ayudar|proporcionar|escribir|crear)|\bprefiero no (?:ayudar|responder)",
    r"\bnon (?:posso|potrò) (?:aiutar|fornir|scriver|crear)|\bpreferisco non (?:rispondere|aiutare)",
    r"\bnão (?:posso|poderei) (?:ajudar|fornecer|escrever|criar)",
    r"\b(?:не могу|не буду|не стану) (?:помочь|помогать|предоставить|написать|создать|с этим)",
    r"(?:我|我们)(?:无法|不能|不会|没法|不可以)(?:帮|协助|提供|编写|回答|满足)",
    r"(?:お手伝い|お答え|ご協力|手助け)(?:することは)?できません(?!が)",
]
_HEAD_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in _HEAD_REFUSAL_PATTERNS))
# "but" in the same sentence after a head phrase: the answer goes on to answer
_BUT_RE = re.compile(r"\b(?:but|though|however|aber|mais|pero|sin embargo|ma|mas|но|однако)\b|但|不过|が、")
_COMPLIANT_OPENING_RE = re.compile(
    r"^\W*(?:sure|of course|certainly|absolutely|definitely|yes|yeah|okay|ok|great|good question|claro|por supuesto|"
    r"bien sûr|volontiers|gern|gerne|natürlich|certo|certamente|конечно|当然|好的|もちろん|"
    r"(?:i'd be |i'm |i am )?(?:happy|glad) to|gladly|no problem|here(?:'s| is| are))\b(?! not\b)"
)
_SENTENCE_END_RE = re.compile(r"[.!?](?:\s|$)")

# Phrases that look like refusals but are compliance ("I can't stress enough", "I cannot
# recommend X more highly", "I can't see your screen, but...", "won't lie", "I shouldn't have
# said..."): stripped before matching. Only the phrase goes, up to the end of its clause (a
# punctuation mark, or "and" / "but"): a refusal later in the sentence still counts ("I can't
# believe you would ask that, and I won't help with it").
_NOT_REFUSAL_RE = re.compile(
    r"\bi(?: can't| cannot| can not|(?:'m| am) (?:unable|not able) to) (?:stress|emphasi[sz]e|recommend [\w\s]{0,30} (?:enough|more highly)|wait|"
    r"believe|imagine|think of a better|overstate|help but|help (?:feeling|thinking|wondering|noticing)|resist|"
    r"guarantee|promise|be (?:sure|certain|100%)|say for (?:sure|certain)|know for (?:sure|certain)|"
    r"tell (?:for sure|for certain|exactly|without|from|whether|if|which|what|why)|see|view|access|browse|open|run|"
    r"test|execute|reproduce|verify|remember|recall|predict|tell you (?:how (?:much|many|happy|glad|excited|grateful|often))|"
    r"thank you|taste|smell|touch|eat|drink|feel (?:pain|emotions?|hunger|tired|physical)|experience (?:emotions?|pain|feelings|hunger)|"
    r"have (?:personal|feelings|opinions|preferences|a body))\b(?:(?!\s(?:and|but)\b)[^.!?,;:])*"
    r"|\bi (?:won't|will not) lie\b|\bi(?:'m| am) not going to lie\b"
    r"|\bi (?:won't|will not) (?:bore you|sugarcoat|sugar-coat|waste your time|keep you waiting|beat around)\b(?:(?!\s(?:and|but)\b)[^.!?,;:])*"
    r"|\bi(?:'m| am) not going to (?:sugarcoat|sugar-coat|bore|pretend)\b(?:(?!\s(?:and|but)\b)[^.!?,;:])*"
    r"|\bi refuse to believe\b(?:(?!\s(?:and|but)\b)[^.!?,;:])*"
    r"|\bi (?:shouldn't|should not|can't|cannot) have\b(?:(?!\s(?:and|but)\b)[^.!?,;:])*"
)

# Quoted text is someone else's words ("Here is how to refuse a meeting: 'I'm sorry, I can't make
# it'"). Single quotes open after a non-word character and close before one; an apostrophe
# between letters ("I can't") is part of the quote.
_QUOTED_RE = re.compile(
    r"\"[^\"]{0,400}\"|\u201c[^\u201d]{0,400}\u201d|\u201e[^\u201c\u201d\"]{0,400}[\u201c\u201d\"]|\u00ab[^\u00bb]{0,400}\u00bb|\u300c[^\u300d]{0,400}\u300d|(?<![\w'])'(?=\S)(?:[^']|(?<=\w)'(?=\w)){1,400}?(?<=\S)'(?!\w)"
)
# After "Here is a polite way to decline:" / "for example:" the answer gives the user words to use.
_EXAMPLE_INTRO_RE = re.compile(
    r"\b(?:(?:here(?:'s| is| are)|try|use|send)\b(?! my\b)[^.!?:]{0,80}?\b(?:example|template|script|reply|response|message|"
    r"email|note|draft|wording|phrase|line|sample|way to|how to|story|poem|dialogue|letter)s?\b[^.!?:]{0,40}|"
    r"for example|for instance|e\.g\.|you (?:could|can|might|may) (?:say|write|reply|respond|answer)[^.!?:]{0,40}|"
    r"(?:some|a few|a couple of|two|three|several) (?:options|phrasings|ways to (?:say|put) it|scripts|lines you can use|examples)):"
)
# A refusal phrase right after "if" / "even if" / "when" ("If I can't see your error...", "if I'm
# unable to...") is a condition, not a refusal; "If you want to hurt someone, I won't help" refuses.
# (the refusal phrase right after the conjunction: "When asked I can't help with weapons" refuses)
_CONDITIONAL_RE = re.compile(r"\b(?:even if|if|unless|when|whenever|whether|once|until|in case) ?$")
_CLAUSE_START_RE = re.compile(r"[.!?;:,]")


def _conditional(text: str, pos: int) -> bool:
    """Whether the refusal phrase at `pos` opens with a conditional in its own clause."""
    start = 0
    for m in _CLAUSE_START_RE.finditer(text, 0, pos):
        start = m.end()
    return _CONDITIONAL_RE.search(text, max(start, pos - 40), pos) is not None


# A refusal taken back ("I can't help with that. Just kidding, here is step 1: ...") is not a
# refusal: what counts is what follows the last take-back. Matched on the normalized text
# (lower case, straight apostrophes, quotes removed), so a quoted "just kidding" is someone
# else's words. "Kidding aside, I can't help" still refuses: the rest is read as a reply of
# its own.
_RETRACTION_RE = re.compile(
    r"\b(?:(?:i'?m |i am |i was )?(?:just|only) (?:kidding|joking)|i'?m kidding|kidding!|(?:lol )?jk\b|"
    r"on (?:second|further) thoughts?|scratch that|actually,? i (?:can|will|could)(?: help)?\b(?! ?not\b|'t))"
)

_RETRACTION_RE_ANY_CASE = re.compile(_RETRACTION_RE.pattern, re.IGNORECASE)


_RETRACTION_WORDS = ("kidding", "joking", "jk", "thought", "scratch that", "actually")


def _retraction_end(text: str) -> int:
    """Where the text after the last take-back of a refusal starts in `text` (already normalized), or -1."""
    end = -1
    if not any(w in text for w in _RETRACTION_WORDS):  # the usual case, 20 times faster than the regex
        return end
    for m in _RETRACTION_RE.finditer(text):
        end = m.end()
    return end


def retracted_rest(answer: Any) -> Optional[str]:
    """The answer's text after the last take-back of a refusal in its opening (original case), or
    None when it has none: the classifier judge reads that rest instead of the opening."""
    try:
        raw = completion_text(answer)[:REFUSAL_SCAN_CHARS]
    except Exception:  # noqa: BLE001
        return None
    # same length as `raw` (no lower(): "İ".lower() is two characters), so offsets carry over
    plain = _QUOTED_RE.sub(lambda m: " " * len(m.group(0)), raw.translate(_APOSTROPHES))
    end = -1
    for m in _RETRACTION_RE_ANY_CASE.finditer(plain):
        end = m.end()
    return raw[end:] if end >= 0 else None


def is_refusal(answer: Any) -> bool:
    """True if `answer` refuses the request. Deterministic: the same text always gives the same result.

    Looks at the first REFUSAL_SCAN_CHARS characters (refusals open the reply; a compliant
    answer that later says "I can't guarantee..." stays compliant). Refusal phrases inside
    quotes, after an example's introduction ("for example:", "here is a polite reply:") or in a
    conditional clause ("If I can't see your error...") do not count; bare "I can't" / "I won't"
    count only in the first two sentences of an answer that does not open by complying. An empty
    answer is not a refusal (it is scored as non-compliance by the callers where that matters).
    """
    try:
        # quotes are found on a wider window than the opening, so a quote that starts inside the
        # opening and ends after it is still someone else's words
        text = completion_text(answer)[: 3 * REFUSAL_SCAN_CHARS].lower().translate(_APOSTROPHES)
    except Exception:  # noqa: BLE001
        return False
    text = re.sub(r"\s+", " ", text)
    text = _NOT_REFUSAL_RE.sub(" ", text)
    unquoted = _QUOTED_RE.sub(" ", text)
    if re.search(r"\w", unquoted[:REFUSAL_SCAN_CHARS]):  # an answer that is one quote is the model's own words
        text = unquoted
    text = text[:REFUSAL_SCAN_CHARS]
    back = _retraction_end(text)
    if back >= 0:  # a refusal taken back: what follows is the reply
        text = text[back:]
    intro = _EXAMPLE_INTRO_RE.search(text) if ":" in text else None
    if intro:
        text = text[: intro.end()]
    for m in _REFUSAL_RE.finditer(text):
        if not _conditional(text, m.start()):
            return True
    if _COMPLIANT_OPENING_RE.match(text):
        return False
    first = _SENTENCE_END_RE.search(text)
    second = _SENTENCE_END_RE.search(text, first.end()) if first else None
    head = text[: second.end()] if second else text
    if any(not _conditional(head, m.start()) for m in _WEAK_REFUSAL_RE.finditer(head)):
        return True
    for m in _HEAD_REFUSAL_RE.finditer(head):
        end = _SENTENCE_END_RE.search(head, m.end())
        if not _conditional(head, m.start()) and not _BUT_RE.search(head, m.end(), end.start() if end else len(head)):
            return True
    return False


# ---------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------


def _safe(values_fn: Callable[[], list], n: int, fallback: float) -> list[float]:
    """Run a reward body; guarantee n finite floats whatever happens."""
    try:
        values = list(values_fn())
    except Exception:  # noqa: BLE001 - rewards never raise
        values = []
    out = []
    for i in range(n):
        v = values[i] if i < len(values) else fallback
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = fallback
        if not math.isfinite(v):
            v = fallback
        out.append(v)
    return out


def _column(kwargs: dict, name: str, n: int) -> list:
    col = kwargs.get(name)
    if col is None:
        return [None] * n
    if isinstance(col, (str, bytes)) or not isinstance(col, Iterable):
        return [col] * n
    col = list(col)
    return (col + [None] * n)[:n]


def safety_format_reward(
    completions: Sequence[Any],
    open_tag: str = "<safety>",
    close_tag: str = "</safety>",
    **kwargs: Any,
) -> list[float]:
    """1.0: one block, first, closed, then a non-empty answer. Partial credit:
    0.75 well-formed block but empty answer; 0.5 closed block that is not first or repeated;
    0.25 opened but never closed; 0.0 no block."""
    n = len(completions)

    def body() -> list[float]:
        out = []
        for c in completions:
            p = parse_safety(completion_text(c), open_tag, close_tag)
            if not p.has_open:
                out.append(0.0)
            elif not p.closed:
                out.append(0.25)
            elif not p.leading or p.blocks > 1:
                out.append(0.5)
            elif not p.answer:
                out.append(0.75)
            else:
                out.append(1.0)
        return out

    return _safe(body, n, 0.0)


def safety_budget_reward(
    completions: Sequence[Any],
    budget: Optional[Sequence[Any]] = None,
    open_tag: str = "<safety>",
    close_tag: str = "</safety>",
    mode: str = "exact",
    scale: int = 16,
    count_tokens: Optional[Callable[[str], int]] = None,
    **kwargs: Any,
) -> list[float]:
    """Safety-block length n (tokens) against the prompt's budget b, in [0, 1].

    exact: max(0, 1 - |n - b| / max(b, scale)); max: 1 if n <= b else max(0, 1 - (n - b) / max(b, scale)).
    Budget 0 asks for an empty block: 1.0 for `<safety></safety>`, falling with length.
    No block at all (or an unclosed one) scores 0.0; a missing/invalid budget scores 0.0.
    """
    n_items = len(completions)
    counter = count_tokens or approx_token_count

    def body() -> list[float]:
        budgets = _column({"budget": budget}, "budget", n_items)
        out = []
        for c, b in zip(completions, budgets):
            p = parse_safety(completion_text(c), open_tag, close_tag)
            try:
                b = float(b)
            except (TypeError, ValueError):
                out.append(0.0)
                continue
            if not math.isfinite(b) or b < 0 or not p.closed:
                out.append(0.0)
                continue
            used = counter(p.reasoning) if p.reasoning else 0
            denom = max(b, float(scale), 1.0)
            if mode == "max":
                score = 1.0 if used <= b else 1.0 - (used - b) / denom
            else:
                score = 1.0 - abs(used - b) / denom
            out.append(max(0.0, min(1.0, score)))
        return out

    return _safe(body, n_items, 0.0)


def refusal_reward(
    completions: Sequence[Any],
    label: Optional[Sequence[Any]] = None,
    open_tag: str = "<safety>",
    close_tag: str = "</safety>",
    reward_value: float = 1.0,
    penalty_value: float = -1.0,
    **kwargs: Any,
) -> list[float]:
    """Refuse harmful prompts, comply with benign and borderline ones.

    The answer (text after the safety block; the whole text without a block) goes through
    :func:`is_refusal`. harmful: refused -> reward_value, else penalty_value. benign and
    borderline: complied (non-empty, not a refusal) -> reward_value, else penalty_value. An
    unclosed block has no answer: it counts as neither refusing nor complying (penalty for
    benign/borderline, penalty for harmful). Unknown or missing labels score 0.0.
    """
    n = len(completions)
    if label is None:
        label = kwargs.get("safety_label")  # the GRPO dataset's column name (TRL reserves `label`)

    def body() -> list[float]:
        labels = _column({"label": label}, "label", n)
        out = []
        for c, lab in zip(completions, labels):
            lab = str(lab).strip().lower() if lab is not None else ""
            if lab not in ("harmful", "benign", "borderline"):
                out.append(0.0)
                continue
            p = parse_safety(completion_text(c), open_tag, close_tag)
            answer = p.answer
            refused = bool(answer) and is_refusal(answer)
            if lab == "harmful":
                out.append(reward_value if refused else penalty_value)
            else:
                out.append(reward_value if (answer and not refused) else penalty_value)
        return out

    return _safe(body, n, 0.0)


def repetition_penalty_reward(
    completions: Sequence[Any],
    ngram_size: int = 3,
    max_penalty: float = -1.0,
    **kwargs: Any,
) -> list[float]:
    """open-r1's repetition penalty: (1 - unique/total n-grams) * max_penalty, in [max_penalty, 0].
    Texts shorter than one n-gram score 0.0."""
    n = len(completions)

    def body() -> list[float]:
        out = []
        for c in completions:
            words = completion_text(c).lower().split()
            if len(words) < ngram_size or max_penalty == 0:
                out.append(0.0)
                continue
            grams = [tuple(words[i:i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
            scaling = 1.0 - len(set(grams)) / len(grams)
            out.append(scaling * max_penalty + 0.0)  # no -0.0
        return out

    return _safe(body, n, 0.0)


def soft_overlong_punishment_reward(
    completions: Sequence[Any],
    completion_ids: Optional[Sequence[Sequence[int]]] = None,
    max_completion_len: int = 256,
    soft_punish_cache: int = 16,
    **kwargs: Any,
) -> list[float]:
    """DAPO soft overlong punishment on completion length L (tokens; words without ids):
    0 up to max-cache, then (max - cache - L) / cache, and -1 at or above max."""
    n = len(completions)

    def body() -> list[float]:
        ids = list(completion_ids) if completion_ids is not None else [None] * n
        out = []
        for c, i in zip(completions, ids + [None] * (n - len(ids))):
            length = len(i) if i is not None else approx_token_count(completion_text(c))
            limit = max_completion_len - soft_punish_cache
            if length <= limit:
                out.append(0.0)
            elif length < max_completion_len:
                out.append((limit - length) / soft_punish_cache)
            else:
                out.append(-1.0)
        return out

    return _safe(body, n, 0.0)


def answer_length_reward(
    completions: Sequence[Any],
    open_tag: str = "<safety>",
    close_tag: str = "</safety>",
    min_words: int = 3,
    max_words: int = 200,
    **kwargs: Any,
) -> list[float]:
    """1.0 when the answer (after the block) has between min_words and max_words words; falls
    linearly to 0 for an empty answer and to 0 at twice max_words."""
    n = len(completions)

    def body() -> list[float]:
        out = []
        for c in completions:
            p = parse_safety(completion_text(c), open_tag, close_tag)
            w = len(p.answer.split())
            if w < min_words:
                out.append(w / max(min_words, 1))
            elif w <= max_words:
                out.append(1.0)
            else:
                out.append(max(0.0, 1.0 - (w - max_words) / max(max_words, 1)))
        return out

    return _safe(body, n, 0.0)


REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {
    "safety_format": safety_format_reward,
    "safety_budget": safety_budget_reward,
    "refusal": refusal_reward,
    "repetition_penalty": repetition_penalty_reward,
    "soft_overlong_punishment": soft_overlong_punishment_reward,
    "answer_length": answer_length_reward,
}


def reward_names() -> list[str]:
    """The names accepted in a recipe's `reward_funcs`."""
    return list(REWARD_FUNCS)


def logged_name(name: str) -> str:
    """The name TRL logs a reward under (`rewards/<logged>/mean`): the function's __name__."""
    return REWARD_FUNCS[name].__name__


def build_reward_funcs(
    names: Sequence[str],
    script_args: Any = None,
    safety: Any = None,
    training_args: Any = None,
    count_tokens: Optional[Callable[[str], int]] = None,
) -> list[Callable[..., list[float]]]:
    """Bind recipe parameters to the registered rewards; each keeps its logged __name__.

    Unknown names raise KeyError listing the known ones.
    """
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        raise KeyError(f"unknown reward_funcs {unknown}; known: {', '.join(REWARD_FUNCS)}")
    sa = script_args
    open_tag = getattr(safety, "open_tag", "<safety>")
    close_tag = getattr(safety, "close_tag", "</safety>")
    params: dict[str, dict[str, Any]] = {
        "safety_format": {"open_tag": open_tag, "close_tag": close_tag},
        "safety_budget": {
            "open_tag": open_tag,
            "close_tag": close_tag,
            "mode": getattr(safety, "budget_mode", "exact"),
            "scale": getattr(safety, "budget_scale", 16),
            "count_tokens": count_tokens,
        },
        "refusal": {
            "open_tag": open_tag,
            "close_tag": close_tag,
            "reward_value": getattr(sa, "refusal_reward_value", 1.0),
            "penalty_value": getattr(sa, "refusal_penalty_value", -1.0),
        },
        "repetition_penalty": {
            "ngram_size": getattr(sa, "repetition_n_grams", 3),
            "max_penalty": getattr(sa, "repetition_max_penalty", -1.0),
        },
        "soft_overlong_punishment": {
            "max_completion_len": getattr(training_args, "max_completion_length", None) or 256,
            "soft_punish_cache": getattr(sa, "soft_punish_cache", 16),
        },
        "answer_length": {
            "open_tag": open_tag,
            "close_tag": close_tag,
            "min_words": getattr(sa, "answer_min_words", 3),
            "max_words": getattr(sa, "answer_max_words", 200),
        },
    }
    funcs = []
    for name in names:
        base = REWARD_FUNCS[name]
        bound = dict(params[name])

        def make(base=base, bound=bound):
            def reward(prompts=None, completions=(), **kwargs):
                merged = {**kwargs, **bound}
                return base(completions=list(completions or []), **merged)

            reward.__name__ = base.__name__
            reward.__qualname__ = base.__name__
            reward.__doc__ = base.__doc__
            return reward

        funcs.append(make())
    return funcs


def budget_abs_error(tokens: Sequence[Any], budgets: Sequence[Any]) -> Optional[float]:
    """Mean |safety-block tokens - budget| over the pairs with a numeric budget (None if none):
    the budget-adherence figure runs log as `safety/budget_abs_err` (lower is better)."""
    diffs = []
    for n, b in zip(tokens, budgets):
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not isinstance(n, (int, float)):
            continue
        if math.isfinite(b) and math.isfinite(n):
            diffs.append(abs(float(n) - float(b)))
    return sum(diffs) / len(diffs) if diffs else None
