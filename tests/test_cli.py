"""The ``sluicegate`` command as users and scripts run it: a real process, real exit codes.

Scripts rely on the exit codes (0 ok, 1 found a problem / changed the text, 2 usage or
load error) and CI pipelines on the messages, so both are pinned here through the
installed console script and ``python -m gateway``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.policy import BUNDLED_DIR, policy_json_schema

SCRIPT = Path(sys.executable).with_name("sluicegate")
ENTRY_POINTS = {"console-script": [str(SCRIPT)], "python-m": [sys.executable, "-m", "gateway"]}

POLICY = """\
version: 1
name: cli
settings:
  cutoff_notice: " [cut]"
rules:
  - id: secret.key
    match: {regex: 'sk-[A-Za-z0-9]{8,}'}
    action: redact
    replacement: "[{rule}]"
  - id: banned
    match: {keywords: [nightingale], ignore_case: true}
    action: block
  - id: watch
    match: {keywords: [refund]}
    action: flag
"""

BROKEN = """\
version: 1
name: broken
rules:
  - id: bad.regex
    match: {regex: 'ab(c'}
    action: redact
"""


def run(
    *args: str, stdin: str = "", entry: str = "console-script", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    return subprocess.run(
        [*ENTRY_POINTS[entry], *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


# -- policy check ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_check_ok(entry: str, policy: Path) -> None:
    result = run("policy", "check", str(policy), entry=entry)
    assert result.returncode == 0, result.stderr
    assert f"{policy}: policy 'cli' ok (3 rules)" in result.stdout


def test_check_broken_names_file_line_and_rule(broken: Path) -> None:
    result = run("policy", "check", str(broken))
    assert result.returncode == 1
    assert f"{broken}:5:" in result.stderr
    assert "rule 'bad.regex'" in result.stderr
    assert "bad regex" in result.stderr


def test_check_reports_good_and_broken_files_together(policy: Path, broken: Path) -> None:
    result = run("policy", "check", str(policy), str(broken))
    assert result.returncode == 1
    assert "policy 'cli' ok" in result.stdout
    assert f"{broken}:5:" in result.stderr


def test_check_prints_warnings_but_passes(tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(
        "version: 1\nname: w\nrules:\n  - id: slow\n    match: {regex: 'a*a*b'}\n"
        "    action: redact\n"
    )
    result = run("policy", "check", str(path))
    assert result.returncode == 0
    assert f"{path}:5:" in result.stderr
    assert "warning" in result.stderr
    assert "backtrack polynomially" in result.stderr


def test_check_fails_on_exponential_backtracking(tmp_path: Path) -> None:
    path = tmp_path / "redos.yaml"
    path.write_text(
        "version: 1\nname: r\nrules:\n  - id: redos\n    match: {regex: '(a|aa)+c'}\n"
        "    action: redact\n"
    )
    result = run("policy", "check", str(path))
    assert result.returncode == 1
    assert f"{path}:5:" in result.stderr
    assert "rule 'redos'" in result.stderr
    assert "backtrack exponentially" in result.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    result = run("policy", "check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "nope.yaml" in result.stderr


# -- policy test ------------------------------------------------------------------------------


def test_policy_test_passes(policy: Path) -> None:
    result = run("policy", "test", str(policy))
    assert result.returncode == 0, result.stdout
    assert "0 failed" in result.stdout


def test_policy_test_failure_shows_expected_and_got(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        POLICY + "tests:\n  - input: 'key sk-abcdefghij'\n    output: 'key [REDACTED]'\n",
        encoding="utf-8",
    )
    result = run("policy", "test", str(path))
    assert result.returncode == 1
    assert "FAIL" in result.stdout
    assert "expected: 'key [REDACTED]'" in result.stdout
    assert "got:      'key [secret.key]'" in result.stdout
    assert "1 failed" in result.stdout


def test_policy_test_failing_example(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "version: 1\nname: e\nrules:\n  - id: kw\n    match: {keywords: [foo]}\n"
        "    action: redact\n    examples:\n      no_match: [food]\n",
        encoding="utf-8",
    )
    result = run("policy", "test", str(path))
    assert result.returncode == 1
    assert "rule 'kw'" in result.stdout
    assert "should not fire on 'food'" in result.stdout


def test_policy_test_of_broken_policy_fails(broken: Path) -> None:
    result = run("policy", "test", str(broken))
    assert result.returncode == 1
    assert f"{broken}:5:" in result.stderr


def test_policy_test_bundled_policies() -> None:
    result = run("policy", "test", "policies", cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout


@pytest.mark.parametrize("action", ["check", "test"])
def test_policy_without_a_path_uses_the_bundled_policies(action: str, tmp_path: Path) -> None:
    result = run("policy", action, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {line.split(":")[0] for line in result.stdout.splitlines()} == {
        str(path) for path in sorted(BUNDLED_DIR.glob("*.yaml"))
    }


# -- policy schema -----------------------------------------------------------------------------


def test_schema_is_json_of_the_models() -> None:
    result = run("policy", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == policy_json_schema()


# -- scan ------------------------------------------------------------------------------------


def test_scan_stdin_default_policy_redacts_and_exits_1() -> None:
    result = run("scan", stdin="mail jane.doe@example.com now")
    assert result.returncode == 1
    assert result.stdout == "mail [REDACTED] now\n"
    assert "pii.email\t5-25\tredact" in result.stderr


def test_scan_clean_text_is_unchanged_and_exits_0(policy: Path) -> None:
    text = "nothing to see, just prose.\nsecond line"
    result = run("scan", "--policy", str(policy), stdin=text)
    assert (result.returncode, result.stdout, result.stderr) == (0, text + "\n", "")


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_scan_file(entry: str, policy: Path, tmp_path: Path) -> None:
    text_file = tmp_path / "answer.txt"
    text_file.write_text("use sk-abcdefgh123, then Nightingale, then more", encoding="utf-8")
    result = run("scan", "--policy", str(policy), str(text_file), entry=entry)
    assert result.returncode == 1
    assert result.stdout == "use [secret.key], then  [cut]\n"
    assert result.stderr.splitlines() == ["secret.key\t4-18\tredact", "banned\t25-36\tblock"]


def test_scan_flag_only_exits_0(policy: Path) -> None:
    result = run("scan", "--policy", str(policy), stdin="a refund please")
    assert result.returncode == 0
    assert result.stdout == "a refund please\n"
    assert result.stderr == "watch\t2-8\tflag\n"


def test_scan_json_shape(policy: Path) -> None:
    result = run("scan", "--json", "--policy", str(policy), stdin="refund sk-abcdefgh1 ok")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "policy": "cli",
        "text": "refund [secret.key] ok",
        "cut": False,
        "hits": [
            {"rule": "watch", "start": 0, "end": 6, "action": "flag", "reason": "match"},
            {"rule": "secret.key", "start": 7, "end": 19, "action": "redact", "reason": "match"},
        ],
    }


def test_scan_json_cut(policy: Path) -> None:
    result = run("scan", "--json", "--policy", str(policy), stdin="x NIGHTINGALE y")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert (out["text"], out["cut"]) == ("x  [cut]", True)
    assert [h["action"] for h in out["hits"]] == ["block"]


def test_scan_direction_input_applies_input_rules(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.write_text(
        "version: 1\nname: d\nrules:\n  - id: in\n    scope: [input]\n"
        "    match: {keywords: [jailbreak]}\n    action: block\n",
        encoding="utf-8",
    )
    text = "try a jailbreak"
    assert run("scan", "--policy", str(path), stdin=text).returncode == 0
    result = run("scan", "--policy", str(path), "--direction", "input", stdin=text)
    assert (result.returncode, result.stdout) == (1, "try a \n")


def test_scan_with_broken_policy_is_a_usage_error(broken: Path) -> None:
    result = run("scan", "--policy", str(broken), stdin="x")
    assert result.returncode == 2
    assert f"{broken}:5:" in result.stderr


def test_scan_unknown_policy_name(policy: Path) -> None:
    result = run("scan", "--policy", str(policy), "--name", "other", stdin="x")
    assert result.returncode == 2
    assert "no policy named 'other'" in result.stderr


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: sluicegate" in result.stdout


def test_bad_arguments_exit_2() -> None:
    result = run("scan", "--direction", "sideways")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
