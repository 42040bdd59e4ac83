"""The official Node SDK streams through the gateway (installed by this test, npm ci)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

NODE_DIR = Path(__file__).resolve().parents[1] / "node"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed for the Node SDK test",
)


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    if not (NODE_DIR / "node_modules" / "openai").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600
        )
    return NODE_DIR


def _run(
    node_sdk: Path, stack: Stack, answer: str, script: str = "stream.mjs"
) -> dict[str, object]:
    result = subprocess.run(
        ["node", script, stack.gateway_url, json.dumps(answer)],
        cwd=node_sdk,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_node_sdk_sees_redaction(node_sdk: Path, stack: Stack) -> None:
    out = _run(node_sdk, stack, "node key sk-Abc123Def456Ghi789 end")
    assert out == {
        "text": "node key [REDACTED] end",
        "finishes": ["stop"],
        "final": "node key [REDACTED] end",
        "finalFinish": "stop",
    }


def test_node_sdk_helper_resolves_on_cut(node_sdk: Path, stack: Stack) -> None:
    out = _run(node_sdk, stack, "stop at nightingale please")
    assert out == {
        "text": "stop at ",
        "finishes": ["content_filter"],
        "final": "stop at ",
        "finalFinish": "content_filter",
    }


def test_node_responses_helper_resolves_redacted(node_sdk: Path, stack: Stack) -> None:
    out = _run(node_sdk, stack, "node key sk-Abc123Def456Ghi789 end", "responses.mjs")
    assert out == {
        "deltas": "node key [REDACTED] end",
        "last": "response.completed",
        "status": "completed",
        "reason": None,
        "outputText": "node key [REDACTED] end",
    }


def test_node_responses_helper_resolves_incomplete_on_cut(node_sdk: Path, stack: Stack) -> None:
    """Node's helper (>= 6.45) resolves with the incomplete response; Python's raises."""
    out = _run(node_sdk, stack, "stop at nightingale please", "responses.mjs")
    assert out == {
        "deltas": "stop at ",
        "last": "response.incomplete",
        "status": "incomplete",
        "reason": "content_filter",
        "outputText": "stop at ",
    }
