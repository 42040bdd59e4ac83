"""The ReDoS analysis: which patterns backtrack exponentially or polynomially, and that
the gateway's own patterns (bundled policies, built-in detectors) stay clean."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import regex

from gateway.detectors import KNOWN_DETECTORS, build_detector
from gateway.policy import load_file
from gateway.policy.backtracking import Backtracking, backtracking
from gateway.policy.loader import BUNDLED_DIR

EXPONENTIAL = [
    r"(a|aa)+c",  # overlapping alternatives; the stdlib parser turns it into (a(?:|a))+c
    r"(a+)+$",
    r"(\w+\s?)*$",
    r"(a+)+b",
    r"(\d+)*x",
    r"(x+x+)+y",
    r"(a|a?)+b",
    r"(a*)*b",  # a loop whose body can match nothing
    r"(?:a{1,3})+b",  # a bounded repeat inside an unbounded one
    r"(a|b|ab)*c",
    r"\b(?:\w+\s?)*\b",  # anchors and \b may fail, so they count as something after
    r"(?:ab|a)(?:ab|a|b)*c",
    r"(?i)(?:a|A)(?:a|A)*(?:a+)+x",
]
POLYNOMIAL = [
    r"a*a*a*b",
    r"\w+\w+x",
    r"\w+\s*\w+x",
    r"\d+\.?\d+x",
    r"[a-f]+[d-z]+!",  # the classes share d, e and f
    r"(?:ab|a)(?:ab|a)*[ab]*c",  # (ab|a)* alone is unambiguous; [ab]* after it is not
]
LINEAR = [
    r"(a+)+",  # nothing can fail after the loop: the first attempt matches
    r"a*a*",
    r"\bfoo\b",
    r"sk-[A-Za-z0-9]{20,}",
    r"\w+@\w+\.\w+",
    r"\w+(?:\s\w+)*!",  # the unambiguous form of (\w+\s?)*
    r"(ab|ac)+d",
    r"(?>a+)+b",  # atomic and possessive: never backtracked into
    r"(a++)+b",
    r"(?:\w+\s?)*+!",
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}",
    r"a+b+c+",
    r"[a-c]+[d-f]+!",
    r"(?i)project\s+nightingale",
    r"(?<!\w)(?:alpha beta|alpha|beta)(?!\w)",
    r"(?:\p{L}+)+x",  # regex-only syntax: not analysed
]


@pytest.mark.parametrize("pattern", EXPONENTIAL)
def test_exponential(pattern: str) -> None:
    assert backtracking(pattern) is Backtracking.EXPONENTIAL


@pytest.mark.parametrize("pattern", POLYNOMIAL)
def test_polynomial(pattern: str) -> None:
    assert backtracking(pattern) is Backtracking.POLYNOMIAL


@pytest.mark.parametrize("pattern", LINEAR)
def test_linear(pattern: str) -> None:
    assert backtracking(pattern) is Backtracking.LINEAR


def test_case_folding_can_make_classes_overlap() -> None:
    assert backtracking(r"a+A+!") is Backtracking.LINEAR
    assert backtracking(r"a+A+!", ignore_case=True) is Backtracking.POLYNOMIAL
    assert backtracking(r"(?i)a+A+!") is Backtracking.POLYNOMIAL


def test_what_the_analysis_calls_exponential_is_slow_in_regex() -> None:
    """Ground truth for one case the ``regex`` module's own guards do not defuse: each
    extra character doubles the time to reject, while the linear rewrite stays instant."""

    def reject(pattern: str, n: int) -> float:
        """Time to find the lone ``c``: every earlier start fails after the d."""
        compiled = regex.compile(pattern)
        started = time.perf_counter()
        match = compiled.search("ab" * n + "dc")
        assert match is not None and match.start() >= 2 * n
        return time.perf_counter() - started

    slow = reject(r"(a|b|ab)*c", 16)
    assert reject(r"(a|b|ab)*c", 19) > 4 * slow
    assert backtracking(r"[ab]*c") is Backtracking.LINEAR
    assert reject(r"[ab]*c", 19) < 0.01


def test_a_huge_keyword_list_is_analysed_quickly() -> None:
    words = [f"word{i}x{i * 7919 % 1000}" for i in range(2000)]
    pattern = r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)"
    started = time.perf_counter()
    assert backtracking(pattern, ignore_case=True) is Backtracking.LINEAR
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("name", sorted(KNOWN_DETECTORS))
def test_built_in_detectors_are_linear(name: str) -> None:
    detector = build_detector(name)
    assert backtracking(detector.pattern, detector.ignore_case) is Backtracking.LINEAR


@pytest.mark.parametrize("path", sorted(BUNDLED_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_policies_are_clean(path: Path) -> None:
    compiled = load_file(path)  # an exponential pattern would fail to load
    assert not [w for w in compiled.warnings if "backtrack" in w.message]
    for rule in compiled.rules.values():
        assert backtracking(rule.pattern, rule.ignore_case) is Backtracking.LINEAR, rule.id
