"""The clients people use stream through the gateway and see what the gateway decided.

Each client runs in its own environment (see conftest.py) as a subprocess and prints what
its caller observed. Three runs per client and API shape, all on the demo's default answer
(the tour: an e-mail address, an API key, a card number, then a confidential project name):

- ``paced``: the default policy, the demo pacing its events, so streaming can be seen;
- ``notice``: the same rules with a ``cutoff_notice``, the setting for clients that hide a cut;
- ``clean``: a scripted harmless answer, so a cut-off's signal can be told from a normal end.

The expected cut-off signal of each client is pinned in ``CASES``: where a client hides
the cut (the same ending as a clean answer), the test asserts that too, so an upgrade
that starts exposing it fails here and the table in docs/clients.md gets updated.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from gateway.demo.scripts import TOUR
from tests.compat.clients.observed import MODEL, PROMPT
from tests.compat.conftest import CLIENTS, NOTICE, NOTICE_POLICY, Envs, client_environ
from tests.e2e.conftest import Stack

PACE_MS = 40
CLEAN = "All clear here."
RUNS: dict[str, dict[str, str]] = {
    "paced": {"X-Demo-Pace-Ms": str(PACE_MS)},
    "notice": {"X-Sluicegate-Policy": NOTICE_POLICY, "X-Demo-Pace-Ms": "0"},
    "clean": {"X-Demo-Reply": json.dumps(CLEAN), "X-Demo-Pace-Ms": "0"},
}
SECRETS = ("dana.reyes@example.com", "sk-proj-Qx7mV2pLk9Rt4Wz8Nb3Hc6Jd", "4111 1111 1111 1111")
REPLACEMENTS = ("at [REDACTED],", "key is [REDACTED:secret.openai-key] for", "is [REDACTED],")
RUN_TIMEOUT = 180.0


@dataclass(frozen=True)
class Case:
    """One client and API shape, and how the caller learns of a cut-off.

    ``finish`` is what the client reports as the ending of a cut answer; ``error`` the
    start of the exception it raises instead; neither means the cut is hidden and only
    ``cutoff_notice`` shows it.
    """

    client: str
    shape: str
    env: str  # a Python env of conftest's Envs.pythons, or "node"
    script: str
    finish: str | None = None
    error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.client}-{self.shape}"


CASES = (
    Case("langchain", "chat", "openai3", "run_langchain.py", finish="content_filter"),
    Case(
        "langchain", "responses", "openai3", "run_langchain.py", finish="incomplete: content_filter"
    ),
    Case("vercel-ai", "chat", "node", "run_vercel_ai.mjs", finish="content-filter"),
    Case("vercel-ai", "responses", "node", "run_vercel_ai.mjs", finish="content-filter"),
    Case("openai-agents", "chat", "openai3", "run_agents.py"),
    Case(
        "openai-agents",
        "responses",
        "openai3",
        "run_agents.py",
        error="ModelBehaviorError: Responses stream ended with terminal event",
    ),
    Case("litellm", "chat", "openai3", "run_litellm.py", finish="content_filter"),
    Case("pydantic-ai", "chat", "openai3", "run_pydantic_ai.py", finish="content_filter"),
    Case("pydantic-ai", "responses", "openai3", "run_pydantic_ai.py", finish="content_filter"),
    Case("llamaindex", "chat", "llamaindex", "run_llamaindex.py"),
)


@dataclass(frozen=True)
class Seen:
    """One run as the caller saw it (the JSON line a client script printed)."""

    chunks: list[tuple[float, str]]
    final: str | None
    finish: str | None
    error: str | None

    @property
    def streamed(self) -> str:
        return "".join(text for _, text in self.chunks)


@dataclass
class Outcome:
    runs: dict[str, Seen] = field(default_factory=dict)
    failure: str = ""


def _run(case: Case, envs: Envs, stack: Stack) -> Outcome:
    if case.env == "node":
        if envs.node_dir is None:
            return Outcome(failure=f"skip: {envs.node_missing}")
        command = ["node", str(envs.node_dir / case.script)]
    else:
        command = [str(envs.pythons[case.env]), str(CLIENTS / case.script)]
    command += [stack.gateway_url, case.shape, *map(json.dumps, RUNS.values())]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=client_environ(),
        check=False,
    )
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != len(RUNS):
        return Outcome(failure=f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}")
    return Outcome({name: Seen(**json.loads(line)) for name, line in zip(RUNS, lines, strict=True)})


@pytest.fixture(scope="session")
def outcomes(client_envs: Envs, compat_stack: Stack) -> dict[Case, Outcome]:
    """Every client's runs, two clients at a time: most of a run is waiting on the pace."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(_run, case, client_envs, compat_stack) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.fixture(params=CASES, ids=lambda case: case.id)
def case_runs(
    request: pytest.FixtureRequest, outcomes: dict[Case, Outcome]
) -> tuple[Case, dict[str, Seen]]:
    case: Case = request.param
    outcome = outcomes[case]
    if outcome.failure.startswith("skip: "):
        pytest.skip(outcome.failure.removeprefix("skip: "))
    assert not outcome.failure, f"{case.id} did not run:\n{outcome.failure}"
    return case, outcome.runs


@pytest.fixture(scope="session")
def reference(compat_stack: Stack) -> dict[str, str]:
    """What the plain OpenAI SDK reads from the same gateway: the text every client must show."""
    client = compat_stack.client()
    texts = {}
    messages = [{"role": "user", "content": PROMPT}]
    with client.chat.completions.create(model=MODEL, messages=messages, stream=True) as chat:
        texts["chat"] = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
    with client.responses.create(model=MODEL, input=PROMPT, stream=True) as events:
        texts["responses"] = "".join(
            e.delta for e in events if e.type == "response.output_text.delta"
        )
    return texts


def test_reference_is_redacted_and_cut(reference: dict[str, str]) -> None:
    """The demo answer the suite relies on still carries each case (a demo change fails here)."""
    assert all(secret in TOUR for secret in SECRETS)
    assert "Project Nightingale" in TOUR
    for text in reference.values():
        assert all(secret not in text for secret in SECRETS)
        assert all(replacement in text for replacement in REPLACEMENTS)
        assert text.endswith("the launch plan for ")
    assert reference["chat"] == reference["responses"]


def test_text_streams_incrementally(case_runs: tuple[Case, dict[str, Seen]]) -> None:
    """Chunks reach the caller while upstream is still sending, not all at the end.

    Upstream sends an event every PACE_MS for the whole answer (about 60 words); a client
    that buffered the stream would hand over everything at once. A quarter of the paced
    duration between first and last chunk is a generous bound (the gateway holds a few
    words back, two cores are shared) that such a client cannot meet.
    """
    _, runs = case_runs
    chunks = runs["paced"].chunks
    assert len(chunks) > 3, chunks
    words_before_cut = len(TOUR.split("Project Nightingale")[0].split())
    spread = chunks[-1][0] - chunks[0][0]
    assert spread >= 0.25 * words_before_cut * PACE_MS / 1000, chunks
    assert [t for t, _ in chunks] == sorted(t for t, _ in chunks)


def test_redaction_arrives_as_replacement(
    case_runs: tuple[Case, dict[str, Seen]], reference: dict[str, str]
) -> None:
    """The caller reads exactly what the gateway sent: replacements in, secrets out."""
    case, runs = case_runs
    seen = runs["paced"]
    assert seen.streamed == reference[case.shape]
    if case.error is None:
        assert seen.final == reference[case.shape]


def test_cutoff_is_visible(case_runs: tuple[Case, dict[str, Seen]]) -> None:
    """The cut-off reaches the caller as the pinned signal, or (hidden) only as the notice."""
    case, runs = case_runs
    cut, notice, clean = runs["paced"], runs["notice"], runs["clean"]
    assert (clean.final, clean.error) == (CLEAN, None)
    if case.error is not None:
        assert cut.error is not None
        assert cut.error.startswith(case.error)
    elif case.finish is not None:
        assert cut.error is None
        assert cut.finish == case.finish != clean.finish
    else:  # hidden: a cut answer ends exactly like a clean one
        assert cut.error is None
        assert cut.finish == clean.finish
    assert notice.streamed.endswith(NOTICE)
    assert notice.streamed.removesuffix(NOTICE) == cut.streamed
