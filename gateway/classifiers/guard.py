"""``kind: guard``: safety models served over chat completions, one family each.

vLLM, TGI and Ollama apply the model's own chat template, so a request is a conversation
(the user's prompt, then the answer being judged) plus the family's template arguments,
and the answer is the family's fixed output format. The formats, from the model cards
and reference code:

``llama_guard`` (Llama Guard 3 and 4)
    ``safe``, or ``unsafe`` and a second line of comma-separated codes ``S1`` ... ``S14``
    (MLCommons hazards; S1 violent crimes, S10 hate, S11 suicide & self-harm ...). The
    template judges the last turn, so the answer is the last message. ``categories:
    [S1, S9]`` keeps only those codes; an ``unsafe`` naming no code still counts.
``shieldgemma``
    The answer starts with ``Yes`` (violates the policy) or ``No``. The Hugging Face
    template takes the policy as ``guideline`` (``chat_template_kwargs``); by default the
    model card's four policies go in one call. The model is trained on one policy per
    call, so listed categories (``dangerous_content``, ``harassment``, ``hate_speech``,
    ``sexually_explicit``) are asked one call each, concurrently, and the categories of a
    verdict are those answered ``Yes``. (Ollama's template has the four policies built in
    and ignores the argument.)
``granite_guardian`` (Granite Guardian 3.0-3.3)
    ``Yes`` (the risk is present) or ``No``; 3.2 appends ``<confidence> High
    </confidence>``, 3.3 answers ``<score> yes </score>``, after a ``<think>`` block in
    thinking mode (not asked for here: the token limit is small). All are read. The
    risk is ``guardian_config`` in the template arguments: ``risk_name`` (3.0-3.2) and
    ``criteria_id`` (3.3), both sent. Without categories the template's default risk
    (``harm``) applies; each listed risk (``violence``, ``profanity``, ``social_bias``
    ...) is one call, as for ShieldGemma. (Ollama's Granite models take the risk from
    their system prompt instead: set it in the Modelfile.)
``qwen3guard`` (Qwen3Guard-Gen)
    ``Safety: Safe|Unsafe|Controversial``, ``Categories: Violent, ...`` and, for an
    answer, ``Refusal: Yes|No``. ``Unsafe`` is flagged. ``Controversial`` (harmful in some
    contexts) is flagged only when ``categories`` lists ``Controversial``: a strict
    deployment opts in, a general one is not cut off for borderline text. Other listed
    names (``Violent``, ``PII`` ...) restrict as for Llama Guard.

Anything else is ``unparseable``: an answer that is neither safe nor unsafe is not a
verdict, and ``on_error`` decides it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from openai.types.chat import ChatCompletionMessageParam

from gateway.classifiers.base import ClassifierError, ClassifyInput, Role, counted
from gateway.classifiers.failures import Unparseable, guarded
from gateway.classifiers.remote import Endpoint, reply_text
from gateway.sluice.verdicts import Verdict

_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{1,40}\|>|<(?:bos|eos|end_of_turn|start_of_turn)>")


@dataclass(frozen=True, slots=True)
class GuardCall:
    """One chat request; ``criterion`` names what it asks about (one policy or risk)."""

    messages: list[ChatCompletionMessageParam]
    template_kwargs: dict[str, Any] | None = None
    criterion: str | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    """A parsed answer: unsafe or not, the categories it names, and whether they count."""

    unsafe: bool
    categories: tuple[str, ...] = ()
    counts: bool = field(default=True)


class Family(Protocol):
    @property
    def max_tokens(self) -> int: ...

    def calls(self, item: ClassifyInput) -> list[GuardCall]: ...

    def judge(self, text: str, call: GuardCall) -> Judgement: ...


def conversation(item: ClassifyInput) -> list[ChatCompletionMessageParam]:
    """The prompt and the answer under judgement, or the prompt alone for input rules."""
    if item.role == "user":
        return [{"role": "user", "content": item.passage}]
    return [
        {"role": "user", "content": item.prompt},
        {"role": "assistant", "content": item.passage},
    ]


def clean(text: str) -> str:
    """The answer without special tokens a server may leave in, trimmed."""
    return _SPECIAL_TOKEN.sub("", text).strip()


# --- Llama Guard ---------------------------------------------------------------------

_LLAMA_CODE = re.compile(r"\bS(\d{1,2})\b", re.IGNORECASE)


def parse_llama_guard(text: str) -> tuple[bool, tuple[str, ...]]:
    """``safe`` / ``unsafe\\nS1,S10`` -> (unsafe, codes); ``Unparseable`` otherwise."""
    lines = [line.strip() for line in clean(text).splitlines() if line.strip()]
    if not lines:
        raise Unparseable("empty")
    head = lines[0].casefold()
    if head == "safe":
        return False, ()
    if head.startswith("unsafe"):
        rest = " ".join([lines[0][len("unsafe") :], *lines[1:]])
        codes = tuple(dict.fromkeys(f"S{int(n)}" for n in _LLAMA_CODE.findall(rest)))
        return True, codes
    raise Unparseable("neither safe nor unsafe")


@dataclass(frozen=True, slots=True)
class LlamaGuard:
    wanted: frozenset[str] | None
    max_tokens: int = 20

    def calls(self, item: ClassifyInput) -> list[GuardCall]:
        return [GuardCall(conversation(item))]

    def judge(self, text: str, call: GuardCall) -> Judgement:
        unsafe, codes = parse_llama_guard(text)
        if not unsafe:
            return Judgement(False)
        kept = counted(codes, self.wanted)
        return Judgement(True, kept, counts=bool(kept) or not codes)


# --- ShieldGemma ---------------------------------------------------------------------

SHIELDGEMMA_POLICIES: dict[str, tuple[str, str]] = {
    "dangerous_content": (
        "No Dangerous Content",
        "harms oneself and/or others (e.g., accessing or building firearms and explosive "
        "devices, promotion of terrorism, instructions for suicide).",
    ),
    "harassment": (
        "No Harassment",
        "is malicious, intimidating, bullying, or abusive content targeting another "
        "individual (e.g., physical threats, denial of tragic events, disparaging victims "
        "of violence).",
    ),
    "hate_speech": (
        "No Hate Speech",
        "targets identity and/or protected attributes (e.g., racial slurs, promotion of "
        "discrimination, calls to violence against protected groups) or dehumanizes, "
        "belittles or vilifies on the bases of race, ethnicity, religion, disability, age, "
        "nationality, veteran status, sexual orientation, gender, gender identity, caste, "
        "or any other protected status. We do allow content that includes a reference to "
        "a protected individual or group in a positive manner.",
    ),
    "sexually_explicit": (
        "No Sexually Explicit Information",
        "contains references to sexual acts or other lewd content (e.g., sexually graphic "
        "descriptions, content aimed at causing arousal). Medical or scientific terms "
        "related to human anatomy or sex education are permitted.",
    ),
}

_YES_NO = re.compile(r"\W*(yes|no)\b", re.IGNORECASE)


def parse_yes_no(text: str) -> bool:
    """An answer that starts with ``Yes`` (True) or ``No`` (False)."""
    match = _YES_NO.match(clean(text))
    if match is None:
        raise Unparseable("neither yes nor no")
    return match.group(1).casefold() == "yes"


def shieldgemma_guideline(policies: list[str], role: Role) -> str:
    """The policies in the model card's wording, for the template's ``guideline``."""
    if role == "assistant":
        actor = "The chatbot shall not generate"
    else:
        actor = "The prompt shall not contain or seek generation of"
    lines = []
    for key in policies:
        title, what = SHIELDGEMMA_POLICIES[key]
        lines.append(f'"{title}": {actor} content that {what}')
    # The template prints "* " before the guideline; the others need their own bullet.
    return "\n* ".join(lines)


@dataclass(frozen=True, slots=True)
class ShieldGemma:
    policies: tuple[str, ...] | None
    max_tokens: int = 4

    @classmethod
    def build(cls, categories: list[str] | None) -> ShieldGemma:
        if categories is None:
            return cls(None)
        keys = tuple(dict.fromkeys(c.casefold() for c in categories))
        unknown = [c for c in keys if c not in SHIELDGEMMA_POLICIES]
        if unknown:
            raise ClassifierError(
                f"shieldgemma has no policy {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(SHIELDGEMMA_POLICIES)}"
            )
        return cls(keys)

    def calls(self, item: ClassifyInput) -> list[GuardCall]:
        messages = conversation(item)
        if self.policies is None:
            guideline = shieldgemma_guideline(list(SHIELDGEMMA_POLICIES), item.role)
            return [GuardCall(messages, {"guideline": guideline})]
        return [
            GuardCall(messages, {"guideline": shieldgemma_guideline([p], item.role)}, p)
            for p in self.policies
        ]

    def judge(self, text: str, call: GuardCall) -> Judgement:
        yes = parse_yes_no(text)
        return Judgement(yes, (call.criterion,) if yes and call.criterion else ())


# --- Granite Guardian ----------------------------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_SCORE = re.compile(r"<score>\s*(yes|no)\s*</score>", re.IGNORECASE)


def parse_granite_guardian(text: str) -> bool:
    """``Yes``/``No`` (3.0-3.2, maybe with ``<confidence>``) or ``<score> yes </score>`` (3.3)."""
    answer = _THINK.sub("", clean(text)).strip()
    score = _SCORE.search(answer)
    if score is not None:
        return score.group(1).casefold() == "yes"
    if "<think>" in answer.casefold():
        raise Unparseable("unfinished thinking")
    return parse_yes_no(answer)


@dataclass(frozen=True, slots=True)
class GraniteGuardian:
    risks: tuple[str, ...] | None
    max_tokens: int = 20

    def calls(self, item: ClassifyInput) -> list[GuardCall]:
        messages = conversation(item)
        if self.risks is None:
            return [GuardCall(messages)]
        return [
            GuardCall(messages, {"guardian_config": {"risk_name": r, "criteria_id": r}}, r)
            for r in self.risks
        ]

    def judge(self, text: str, call: GuardCall) -> Judgement:
        yes = parse_granite_guardian(text)
        return Judgement(yes, (call.criterion or "harm",) if yes else ())


# --- Qwen3Guard ----------------------------------------------------------------------

_QWEN_SAFETY = re.compile(r"Safety:\s*(Safe|Unsafe|Controversial)\b", re.IGNORECASE)
_QWEN_CATEGORIES = re.compile(r"Categories:\s*([^\n]*)", re.IGNORECASE)
CONTROVERSIAL = "Controversial"


def parse_qwen3guard(text: str) -> tuple[str, tuple[str, ...]]:
    """``Safety: Unsafe\\nCategories: Violent`` -> ("unsafe", ("Violent",))."""
    answer = clean(text)
    safety = _QWEN_SAFETY.search(answer)
    if safety is None:
        raise Unparseable("no Safety: line")
    listed = _QWEN_CATEGORIES.search(answer)
    names = [n.strip() for n in listed.group(1).split(",")] if listed else []
    return safety.group(1).casefold(), tuple(n for n in names if n and n.casefold() != "none")


@dataclass(frozen=True, slots=True)
class Qwen3Guard:
    wanted: frozenset[str] | None
    max_tokens: int = 48

    def calls(self, item: ClassifyInput) -> list[GuardCall]:
        return [GuardCall(conversation(item))]

    def judge(self, text: str, call: GuardCall) -> Judgement:
        label, names = parse_qwen3guard(text)
        if label == "safe":
            return Judgement(False)
        wanted = self.wanted or frozenset()
        controversial = CONTROVERSIAL.casefold()
        if label == controversial and controversial not in wanted:
            return Judgement(False)
        restrict = wanted - {controversial}
        kept = counted(names, restrict) if restrict else names
        prefix = (CONTROVERSIAL,) if label == controversial else ()
        return Judgement(True, prefix + kept, counts=bool(kept) or not names)


# --- The classifier ------------------------------------------------------------------


class GuardClassifier:
    """Asks a family's calls concurrently; flagged when any counted answer is unsafe."""

    def __init__(self, endpoint: Endpoint, model: str, family: Family) -> None:
        self._endpoint = endpoint
        self._model = model
        self._family = family

    async def classify(self, item: ClassifyInput) -> Verdict:
        return await guarded(lambda: self._call(item), self._endpoint.timeout)

    async def _call(self, item: ClassifyInput) -> Verdict:
        calls = self._family.calls(item)
        texts = await asyncio.gather(*(self._ask(item, call) for call in calls))
        flagged, found = False, []
        for call, text in zip(calls, texts, strict=True):
            judgement = self._family.judge(text, call)
            if judgement.unsafe and judgement.counts:
                flagged = True
                found += [c for c in judgement.categories if c not in found]
        return Verdict(flagged=flagged, categories=tuple(found))

    async def _ask(self, item: ClassifyInput, call: GuardCall) -> str:
        extra = {"chat_template_kwargs": call.template_kwargs} if call.template_kwargs else None
        completion = await self._endpoint.client_for(item).chat.completions.create(
            model=self._model,
            messages=call.messages,
            max_tokens=self._family.max_tokens,
            temperature=0,
            extra_body=extra,
        )
        return reply_text(completion)
