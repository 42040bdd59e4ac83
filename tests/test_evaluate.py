"""``sluicegate eval`` on a small generated file: through a real gateway and the demo."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gateway.cli import EXIT_OK, EXIT_USAGE, main

BENIGN = ["The tea is warm.", "We walked to the park.", "Lunch is at noon.", "It rained all day."]
HARMFUL = ["I will attack them tonight.", "You are a worthless idiot.", "He planned to kill it."]


def generated(path: Path, count: int, seed: int) -> Path:
    """Answers of two to four sentences, a harmful one somewhere in about half of them."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        sentences = rng.sample(BENIGN, rng.randint(2, 4))
        flagged = rng.random() < 0.5
        if flagged:
            sentences.insert(rng.randrange(1, len(sentences) + 1), rng.choice(HARMFUL))
        lines.append(json.dumps({"text": " ".join(sentences), "flagged": flagged}))
    path.write_text("\n".join(lines) + "\n")
    return path


POLICY = """version: 1
name: eval-me
rules:
  - id: harm
    scope: [output]
    match:
      classifier: {kind: moderation, timeout_seconds: 2}
    action: flag
"""


def test_eval_reports_precision_recall_and_leaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    cases = generated(tmp_path / "cases.jsonl", 12, seed=3)
    args = ["eval", "--policy", str(policy), "--upstream", "demo", "--pace-ms", "15", "--json"]
    assert main([*args, str(cases)]) == EXIT_OK
    modes = {row["mode"]: row for row in json.loads(capsys.readouterr().out)["modes"]}
    assert {m["cases"] for m in modes.values()} == {12}
    # The demo's lexicon decides: every harmful sentence is flagged, nothing else is.
    assert modes["hold"]["precision"] == modes["hold"]["recall"] == 1.0
    assert modes["hold"]["leaked_chars_total"] == 0  # hold never shows a flagged sentence
    assert modes["async"]["recall"] == 1.0
    assert modes["async"]["leaked_chars_total"] > 0  # async streams it before its verdict


def test_eval_refuses_a_bad_file_and_a_policy_without_classifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no label"}\n')
    assert main(["eval", "--policy", str(policy), "--upstream", "demo", str(bad)]) == EXIT_USAGE
    assert "bad.jsonl:1" in capsys.readouterr().err
    plain = tmp_path / "plain.yaml"
    plain.write_text("version: 1\nname: plain\n")
    cases = generated(tmp_path / "c.jsonl", 2, seed=1)
    assert main(["eval", "--policy", str(plain), "--upstream", "demo", str(cases)]) == EXIT_USAGE
    assert "no classifier rules" in capsys.readouterr().err
