"""The policy layer: YAML to compiled sluice configs, and the errors an author sees.

An error message is the policy author's only tool, so each case pins the file, the line
and column of the offending key, the rule id and the words that say what to change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.policy import (
    CompiledPolicy,
    Direction,
    PolicyError,
    Problem,
    load_file,
    load_paths,
    load_text,
    policy_json_schema,
)
from gateway.policy.loader import BUNDLED_DIR
from gateway.policy.selftest import run_policy_tests
from gateway.sluice import Action, moderate

HEAD = "version: 1\nname: p\nrules:\n"


def problems(text: str, file: str = "p.yaml") -> list[Problem]:
    with pytest.raises(PolicyError) as info:
        load_text(text, file)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


def only(text: str) -> Problem:
    (problem,) = problems(text)
    return problem


# -- load errors: where and what ----------------------------------------------------------


def test_unknown_key_names_the_key_and_lists_the_allowed_ones() -> None:
    p = only(
        HEAD + "  - id: r1\n    match: {regex: abc}\n    action: redact\n    replacment: '[x]'\n"
    )
    assert (p.file, p.line, p.column, p.rule_id) == ("p.yaml", 7, 5, "r1")
    assert "unknown key 'replacment'" in p.message
    assert "allowed:" in p.message
    assert "replacement" in p.message.split("allowed:")[1]
    assert str(p).startswith("p.yaml:7:5: error: rule 'r1': ")


def test_unknown_top_level_key() -> None:
    p = only("version: 1\nname: p\nrulez: []\n")
    assert (p.line, p.column, p.rule_id) == (3, 1, None)
    assert "'rulez'" in p.message
    assert "rules" in p.message.split("allowed:")[1]


def test_duplicate_rule_id_points_at_the_second_and_names_the_first() -> None:
    text = HEAD + (
        "  - id: r1\n    match: {regex: abc}\n    action: redact\n"
        "  - id: r1\n    match: {regex: def}\n    action: redact\n"
    )
    p = only(text)
    assert (p.line, p.column, p.rule_id) == (7, 5, "r1")
    assert "duplicate rule id" in p.message
    assert "line 4" in p.message


def test_duplicate_yaml_key_is_an_error_not_last_one_wins() -> None:
    text = HEAD + "  - id: r1\n    match: {regex: abc}\n    action: redact\n    action: block\n"
    p = only(text)
    assert (p.line, p.column, p.rule_id) == (7, 5, "r1")
    assert "duplicate key 'action'" in p.message


def test_bad_regex_carries_the_regex_error() -> None:
    p = only(HEAD + "  - id: r1\n    match:\n      regex: 'ab(c'\n    action: redact\n")
    assert (p.line, p.rule_id) == (6, "r1")
    assert p.message.startswith("bad regex: ")
    assert "missing )" in p.message


def test_empty_keyword_list() -> None:
    p = only(HEAD + "  - id: r1\n    match:\n      keywords: []\n    action: block\n")
    assert (p.line, p.rule_id) == (6, "r1")
    assert "at least one phrase" in p.message


def test_blank_keyword() -> None:
    p = only(HEAD + "  - id: r1\n    match:\n      keywords: [ok, '  ']\n    action: block\n")
    assert (p.line, p.rule_id) == (6, "r1")
    assert "empty phrase" in p.message


def test_replacement_on_a_non_redact_rule() -> None:
    text = HEAD + "  - id: r1\n    match: {regex: abc}\n    action: block\n    replacement: x\n"
    p = only(text)
    assert p.rule_id == "r1"
    assert (p.line, p.column) == (7, 5), "the error points at the replacement key"
    assert "replacement is only allowed when action is redact" in p.message


@pytest.mark.parametrize("pattern", ["a*", "x?", "(?:foo)?", "\\b", "(?=a)"])
def test_pattern_that_can_match_the_empty_string(pattern: str) -> None:
    p = only(HEAD + f"  - id: r1\n    match: {{regex: '{pattern}'}}\n    action: redact\n")
    assert (p.line, p.rule_id) == (5, "r1")
    assert "empty string" in p.message


@pytest.mark.parametrize(
    ("pattern", "named"),
    [("^abc", "^"), ("abc$", "$"), ("\\Aabc", "\\A"), ("abc\\Z", "\\Z"), ("(?:x|^y)", "^")],
)
def test_anchors_are_rejected(pattern: str, named: str) -> None:
    p = only(HEAD + f"  - id: r1\n    match: {{regex: '{pattern}'}}\n    action: redact\n")
    assert (p.line, p.rule_id) == (5, "r1")
    assert f"anchors {named} are not supported" in p.message


def test_missing_version() -> None:
    p = only("name: p\nrules: []\n")
    assert (p.line, p.column) == (1, 1)
    assert "version" in p.message
    assert "missing" in p.message


def test_wrong_version() -> None:
    p = only("version: 2\nname: p\n")
    assert p.line == 1
    assert "version" in p.message


def test_wrong_types_each_reported_at_its_key() -> None:
    text = (
        "version: 1\nname: p\nsettings:\n  max_hold_chars: lots\nrules:\n"
        "  - id: r1\n    match: {regex: abc, ignore_case: maybe}\n    action: redact\n"
    )
    hold, case = problems(text)
    assert (hold.line, hold.rule_id) == (4, None)
    assert "max_hold_chars" in hold.message
    assert "integer" in hold.message
    assert (case.line, case.rule_id) == (7, "r1")
    assert "ignore_case" in case.message
    assert "boolean" in case.message


def test_unknown_action_and_bad_rule_id() -> None:
    text = HEAD + "  - id: Bad Id\n    match: {regex: abc}\n    action: delete\n"
    found = problems(text)
    assert {p.line for p in found} == {4, 6}
    assert any("action" in p.message for p in found)
    assert any("id" in p.message for p in found)


def test_match_needs_exactly_one_kind() -> None:
    p = only(HEAD + "  - id: r1\n    match: {regex: a, keywords: [b]}\n    action: redact\n")
    assert (p.line, p.rule_id) == (5, "r1")
    assert "exactly one of" in p.message


def test_unknown_detector_lists_the_known_ones() -> None:
    p = only(HEAD + "  - id: r1\n    match: {detector: nope}\n    action: redact\n")
    assert (p.line, p.rule_id) == (5, "r1")
    assert "nope" in p.message
    assert "email" in p.message


def test_yaml_syntax_error_has_a_position() -> None:
    p = only("version: 1\nname: p\nrules: [\n")
    assert p.line >= 3
    assert p.message.startswith("YAML:")


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = HEAD + (
        "  - id: r1\n    match: {regex: '^a'}\n    action: redact\n"
        "  - id: r2\n    match: {regex: 'b('}\n    action: redact\n"
    )
    assert [p.rule_id for p in problems(text)] == ["r1", "r2"]


def test_exponential_backtracking_is_an_error() -> None:
    p = only(HEAD + "  - id: r1\n    match: {regex: '(a|aa)+c'}\n    action: redact\n")
    assert (p.line, p.rule_id, p.level) == (5, "r1", "error")
    assert "backtrack exponentially" in p.message


def test_polynomial_backtracking_loads_with_a_warning() -> None:
    compiled = load_text(
        HEAD + "  - id: r1\n    match: {regex: 'a*a*b'}\n    action: redact\n", "p"
    )
    (warning,) = compiled.warnings
    assert (warning.line, warning.rule_id, warning.level) == (5, "r1", "warning")
    assert "backtrack polynomially" in warning.message


# -- what a loaded policy does --------------------------------------------------------------


def load(text: str) -> CompiledPolicy:
    return load_text(text, "p.yaml")


def test_rule_placeholder_in_replacement() -> None:
    compiled = load(
        HEAD + "  - id: secret.k\n    match: {regex: 'sk-\\w{8,}'}\n    action: redact\n"
        "    replacement: '<{rule}|{rule}>'\n"
        "  - id: plain\n    match: {keywords: [hush]}\n    action: redact\n"
    )
    got = moderate(compiled.output, "a sk-abcdefgh b hush")
    assert got.text == "a <secret.k|secret.k> b [REDACTED]"


def test_keywords_whole_words_ignore_case() -> None:
    compiled = load(
        HEAD + "  - id: kw\n    match:\n      keywords: [falcon budget, falcon]\n"
        "      whole_words: true\n      ignore_case: true\n    action: redact\n"
    )
    cfg = compiled.output
    assert moderate(cfg, "The FALCON Budget!").text == "The [REDACTED]!"
    assert moderate(cfg, "falcons and falcon_x").text == "falcons and falcon_x"
    assert moderate(cfg, "a falcon, budget").text == "a [REDACTED], budget"


def test_keywords_are_literal() -> None:
    compiled = load(
        HEAD + "  - id: kw\n    match: {keywords: ['a.b', '(x)']}\n    action: redact\n"
    )
    assert moderate(compiled.output, "axb a.b (x) x").text == "axb [REDACTED] [REDACTED] x"


def test_scope_limits_a_rule_to_one_direction() -> None:
    compiled = load(
        HEAD
        + "  - id: in\n    scope: [input]\n    match: {keywords: [secret]}\n    action: block\n"
    )
    assert moderate(compiled.config(Direction.INPUT), "a secret").cut
    assert not moderate(compiled.config(Direction.OUTPUT), "a secret").cut


def test_shadow_mode_turns_every_action_into_flag_and_keeps_the_intent() -> None:
    compiled = load(
        "version: 1\nname: p\nmode: shadow\nrules:\n"
        "  - id: b\n    match: {keywords: [secret]}\n    action: block\n"
        "  - id: r\n    match: {regex: 'sk-\\w{8,}'}\n    action: redact\n"
    )
    text = "a secret and sk-abcdefghij"
    got = moderate(compiled.output, text)
    assert (got.text, got.cut) == (text, False)
    assert sorted((h.rule_id, h.action, h.intended) for h in got.hits) == [
        ("b", Action.FLAG, Action.BLOCK),
        ("r", Action.FLAG, Action.REDACT),
    ]


def test_settings_reach_the_sluice() -> None:
    compiled = load(
        "version: 1\nname: p\nsettings:\n  max_hold_chars: 32\n  on_error: allow\n"
        "  cutoff_notice: ' [stopped]'\nrules: []\n"
    )
    cfg = compiled.output
    assert (cfg.max_hold, cfg.fail_closed, cfg.cutoff_notice) == (32, False, " [stopped]")


# -- files and directories ------------------------------------------------------------------

GOOD = (
    "version: 1\nname: {name}\nrules:\n  - id: r\n    match: {{keywords: [x]}}\n    action: flag\n"
)


def test_a_directory_loads_whole(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="a"))
    (tmp_path / "b.yml").write_text(GOOD.format(name="b"))
    (tmp_path / "notes.txt").write_text("not a policy")
    assert sorted(load_paths([tmp_path])) == ["a", "b"]


def test_a_directory_with_one_broken_file_loads_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="a"))
    (tmp_path / "b.yaml").write_text("version: 1\nname: b\nrules:\n  - id: r\n    action: flag\n")
    with pytest.raises(PolicyError) as info:
        load_paths([tmp_path])
    (problem,) = info.value.problems
    assert problem.file == str(tmp_path / "b.yaml")
    assert (problem.line, problem.rule_id) == (4, "r")
    assert "match" in problem.message


def test_two_files_with_one_policy_name_load_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="same"))
    (tmp_path / "b.yaml").write_text(GOOD.format(name="same"))
    with pytest.raises(PolicyError) as info:
        load_paths([tmp_path])
    assert "also in" in str(info.value)
    assert str(tmp_path / "b.yaml") in str(info.value)


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no policy files found"):
        load_paths([tmp_path])


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"version: 1\nname: \xff\n")
    with pytest.raises(PolicyError, match="cannot read"):
        load_file(path)


# -- policy testing ---------------------------------------------------------------------


def test_failing_examples_and_cases_are_reported() -> None:
    compiled = load(
        HEAD + "  - id: kw\n    match: {keywords: [secret]}\n    action: redact\n"
        "    examples:\n      match: [a secret, nothing here]\n      no_match: [secretly]\n"
        "tests:\n  - input: my secret\n    output: my secret\n"
    )
    checks, failures = run_policy_tests(compiled)
    assert checks == 4
    cases = sorted(f.case for f in failures)
    assert cases == [
        "input 'my secret'",
        "should fire on 'nothing here'",
        "should not fire on 'secretly'",
    ]
    (case,) = [f for f in failures if f.case.startswith("input")]
    assert (case.expected, case.got) == ("'my secret'", "'my [REDACTED]'")


def test_case_rules_must_match_in_text_order() -> None:
    compiled = load(
        HEAD + "  - id: a\n    match: {keywords: [aa]}\n    action: redact\n"
        "  - id: b\n    match: {keywords: [bb]}\n    action: redact\n"
        "tests:\n  - input: bb aa\n    output: '[REDACTED] [REDACTED]'\n    rules: [a, b]\n"
    )
    _, failures = run_policy_tests(compiled)
    (failure,) = failures
    assert (failure.expected, failure.got) == ("['a', 'b']", "['b', 'a']")


# -- the schema and the bundled policies ------------------------------------------------------

SCHEMA_FILE = BUNDLED_DIR / "schema.json"
BUNDLED = sorted(BUNDLED_DIR.glob("*.yaml"))
NO_BUNDLED = pytest.param(None, marks=pytest.mark.skip(reason=f"no *.yaml in {BUNDLED_DIR}"))


def test_schema_file_matches_the_models() -> None:
    """policies/schema.json is generated; regenerate with `sluicegate policy schema`."""
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == policy_json_schema()


def test_schema_forbids_unknown_keys_like_the_loader() -> None:
    schema = policy_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["version", "name"]
    rule = schema["$defs"]["PolicyRule"]
    assert rule["additionalProperties"] is False
    assert set(rule["properties"]) == {
        "id", "description", "severity", "scope", "match", "action", "replacement", "examples"
    }  # fmt: skip


@pytest.mark.parametrize("path", BUNDLED or [NO_BUNDLED], ids=lambda p: p.name if p else "none")
def test_bundled_policy_checks_clean(path: Path) -> None:
    compiled = load_file(path)
    assert compiled.rules
    assert compiled.warnings == (), [str(w) for w in compiled.warnings]


@pytest.mark.parametrize("path", BUNDLED or [NO_BUNDLED], ids=lambda p: p.name if p else "none")
def test_bundled_policy_passes_its_own_tests(path: Path) -> None:
    checks, failures = run_policy_tests(load_file(path))
    assert checks > 0
    assert failures == [], "\n".join(str(f) for f in failures)


def test_bundled_directory_loads_whole() -> None:
    if not BUNDLED:
        pytest.skip(f"no *.yaml in {BUNDLED_DIR}")
    loaded = load_paths([BUNDLED_DIR])
    assert "default" in loaded
    assert len(loaded) == len(BUNDLED)


def test_verbose_pattern_with_a_trailing_comment_loads_and_matches() -> None:
    compiled = load(
        HEAD + "  - id: v\n    match: {regex: '(?x) sk- [a-z]{4,}  # a key'}\n    action: redact\n"
    )
    assert moderate(compiled.output, "a sk-abcdef b").text == "a [REDACTED] b"
