"""Every hit is reported exactly once, where it comes back: metrics and the audit file.

Hits travel back from the adapters with the events (and bodies) they shaped; the relay
reports them as they arrive. Counted twice, or not at all, a dashboard would lie.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, e2e_settings, reply, run_stack

SECRET = "sk-Abc123Def456Ghi789"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    yield from run_stack(lambda upstream: e2e_settings(upstream, audit_log=audit))


def _hits(stack: Stack, rule: str, direction: str) -> float:
    pattern = (
        rf'^sluicegate_rule_hits_total\{{action="[a-z]+",direction="{direction}",'
        rf'policy="test",rule="{re.escape(rule)}"\}} (\S+)$'
    )
    found = re.search(pattern, stack.metrics_text(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _audit(stack: Stack) -> list[dict[str, object]]:
    path = stack.settings.audit_log
    assert path is not None
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("stream", [True, False])
def test_each_output_hit_is_counted_once(audited: Stack, stream: bool) -> None:
    before = _hits(audited, "secret", "output")
    text = f"one {SECRET} two {SECRET} three"
    client = audited.client()
    if stream:
        chunks = client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers=reply(text, chunking="char"),
        )
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=reply(text),
        )
        content = completion.choices[0].message.content or ""
    assert content == "one [REDACTED] two [REDACTED] three"
    assert _hits(audited, "secret", "output") == before + 2


def test_input_hits_are_counted_once_and_audited_without_text(audited: Stack) -> None:
    before = _hits(audited, "secret", "input")
    audited.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": f"my key {SECRET}"}],
        extra_headers=reply("ok"),
    )
    assert _hits(audited, "secret", "input") == before + 1
    assert audited.wait_for(
        lambda: any(e["direction"] == "input" for e in _audit(audited)), timeout=5
    )
    entries = _audit(audited)
    inputs = [e for e in entries if e["direction"] == "input"]
    assert inputs[-1]["channel"] == "input:messages[0].content"
    assert inputs[-1]["rule"] == "secret"
    assert SECRET not in Path(str(audited.settings.audit_log)).read_text()
