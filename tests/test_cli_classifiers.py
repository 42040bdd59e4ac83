"""The command line with classifier rules: real classifier calls, to the demo upstream.

``scan`` and ``policy test`` call the classifiers the policy names (``--upstream demo``
starts the demo in-process) and fail plainly when one cannot be reached; ``policy
check`` builds them without calling, so it catches an unset key variable offline.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, main

POLICY = """version: 1
name: judged
rules:
  - id: secret
    match: {regex: "sk-[a-z]{8,}"}
    action: redact
  - id: harm
    scope: [output]
    match:
      classifier: {kind: moderation, timeout_seconds: 2}
    action: block
    examples:
      match: ["I will attack them."]
      no_match: ["I will visit them."]
tests:
  - input: "Hello there. I will attack at dawn. Bye."
    output: "Hello there. "
  - input: "My key is sk-abcdefghij here. Fine."
    output: "My key is [REDACTED] here. Fine."
"""


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "judged.yaml"
    path.write_text(POLICY)
    return path


def scan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, text: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code = main(["scan", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scan_calls_the_classifier(
    policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = scan(
        monkeypatch, capsys, "--policy", str(policy), "--upstream", "demo",
        text="Here is the plan. I will attack at dawn.",
    )  # fmt: skip
    assert (code, out) == (EXIT_FAIL, "Here is the plan. \n")
    assert "harm\t18-" in err
    code, out, _ = scan(
        monkeypatch, capsys, "--policy", str(policy), "--upstream", "demo", text="All calm."
    )
    assert (code, out) == (EXIT_OK, "All calm.\n")


def test_scan_fails_plainly_when_the_classifier_cannot_be_reached(
    policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = scan(
        monkeypatch, capsys, "--policy", str(policy), "--upstream", "http://127.0.0.1:9/v1",
        text="All calm.",
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert "classifier of rule 'harm' gave no verdict (connection" in err


def test_policy_test_runs_examples_and_cases_through_the_classifier(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test", str(policy), "--upstream", "demo"]) == EXIT_OK
    assert "4 passed, 0 failed" in capsys.readouterr().out


def test_policy_test_fails_a_wrong_expectation(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy.write_text(POLICY.replace('output: "Hello there. "', 'output: "Hello there. I will"'))
    assert main(["policy", "test", str(policy), "--upstream", "demo"]) == EXIT_FAIL
    assert "FAIL" in capsys.readouterr().out


def test_policy_test_never_passes_unreachable_classifiers(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["policy", "test", str(policy), "--upstream", "http://127.0.0.1:9/v1"]) == EXIT_USAGE
    )
    assert "gave no verdict" in capsys.readouterr().err


def test_policy_check_builds_classifiers_without_calling_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keyed.yaml"
    path.write_text(
        POLICY.replace("kind: moderation,", "kind: moderation, api_key_env: SG_TEST_MOD_KEY,")
    )
    monkeypatch.delenv("SG_TEST_MOD_KEY", raising=False)
    assert main(["policy", "check", str(path)]) == EXIT_FAIL
    assert "SG_TEST_MOD_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SG_TEST_MOD_KEY", "k")
    assert main(["policy", "check", str(path)]) == EXIT_OK
    assert "(2 rules)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("kind: moderation,", "kind: guard, model: m,"),
        ("action: block\n    examples", "action: redact\n    examples"),
    ],
)
def test_policy_check_rejects_what_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    text = POLICY.replace(change, message)
    if "redact" in message:
        text = text.replace(
            "scope: [output]\n    match:\n      classifier", "match:\n      classifier"
        )
    path.write_text(text)
    assert main(["policy", "check", str(path)]) == EXIT_FAIL
    err = capsys.readouterr().err
    assert "family" in err or "output only" in err
