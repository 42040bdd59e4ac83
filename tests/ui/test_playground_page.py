"""The playground as a policy author uses it: in a real browser, against a real gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gateway.policy import BUNDLED_DIR
from tests.e2e.conftest import Stack, run_stack
from tests.ui.conftest import ui_settings

DEFAULT = (BUNDLED_DIR / "default.yaml").read_text()
EMAIL_TEXT = "Mail jane.doe@example.com today."


def _open(page: Page, stack: Stack) -> None:
    page.goto(stack.gateway_url.removesuffix("/v1") + "/ui")
    expect(page.locator("#check-status")).to_have_text(
        "policy.yaml: policy 'default' ok (15 rules)"
    )


def _sample(page: Page, text: str) -> None:
    page.fill("#sample", text)


def test_a_sample_is_moderated_with_every_hit_highlighted(page: Page, ui_stack: Stack) -> None:
    _open(page, ui_stack)
    email = page.locator("#scan-input mark.redact[data-rule='pii.email']")
    expect(email).to_have_text("jane.doe@example.com")
    expect(page.locator("#scan-output")).to_contain_text("Write to [REDACTED],")
    email.hover()
    tip = page.locator("#hit-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("pii.email — redact, characters 15–35")
    email.focus()
    page.keyboard.press("Tab")  # the next hit takes focus, and its rule shows
    expect(tip).to_contain_text("secret.openai-key")


def test_editing_a_rule_changes_what_is_highlighted(page: Page, ui_stack: Stack) -> None:
    _open(page, ui_stack)
    page.select_option("#sample-select", label="Confidential project")
    blocked = page.locator("#scan-input mark[data-rule='confidential.projects']")
    expect(blocked).to_have_class("block")
    edited = DEFAULT.replace(
        "      whole_words: true\n    action: block", "      whole_words: true\n    action: redact"
    )
    assert edited != DEFAULT
    page.fill("#policy", edited)
    expect(blocked).to_have_class("redact")
    expect(page.locator("#scan-output")).to_contain_text("The roadmap is public. [REDACTED] ships")


def test_a_policy_error_is_reported_at_its_line(page: Page, ui_stack: Stack) -> None:
    _open(page, ui_stack)
    page.fill("#policy", DEFAULT.replace("action: redact", "action: redakt", 1))
    problem = page.locator("#problems button")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("line 17, column 5, rule secret.openai-key: error:")
    expect(problem).to_contain_text("Input should be 'redact', 'block' or 'flag'")
    expect(page.locator("#gutter .bad")).to_have_text("17\n")
    expect(page.locator("#policy")).to_have_attribute("aria-invalid", "true")
    problem.click()  # jumps to the line
    line = page.evaluate(
        "() => { const e = document.getElementById('policy');"
        " return e.value.slice(0, e.selectionStart).split('\\n').length; }"
    )
    assert line == 17


def test_a_replay_holds_text_for_the_rule_then_releases_it(
    page: Page, ui_stack: Stack, artifacts: Path
) -> None:
    _open(page, ui_stack)
    _sample(page, EMAIL_TEXT)
    expect(page.locator("#scan-input")).to_have_text(EMAIL_TEXT)  # the sample is in
    page.click("#tab-replay")
    page.select_option("#chunking", "char")
    expect(page.locator("#replay-status")).to_have_text(f"{len(EMAIL_TEXT) + 1} events")
    stream = page.locator("#stream")
    for _ in range(EMAIL_TEXT.index("@") + 1):
        page.click("#replay-step")
    held = stream.locator(".held")
    expect(held).to_have_attribute("data-rule", "pii.email")
    expect(held).to_contain_text("jane.doe@")
    expect(stream).to_contain_text("Mail ")
    expect(page.locator("#timeline .bar")).to_have_count(len(EMAIL_TEXT) + 1)
    page.screenshot(path=str(artifacts / "replay-held.png"), full_page=True)
    page.fill("#pace", "20")
    page.click("#replay-play")
    expect(stream).to_have_text("Mail [REDACTED] today.")
    expect(stream.locator(".redacted")).to_have_text("[REDACTED]")
    expect(stream.locator(".held")).to_have_count(0)
    expect(page.locator("#shares")).to_contain_text("pii.email")


def test_a_replay_shows_verdicts_awaited_and_the_cut(page: Page, ui_stack: Stack) -> None:
    _open(page, ui_stack)
    page.select_option("#policy-select", label="harm.yaml")
    expect(page.locator("#check-status")).to_have_text("policy.yaml: policy 'harm' ok (3 rules)")
    page.select_option("#sample-select", label="Harmful sentence (classifier rules)")
    page.click("#tab-replay")
    page.fill("#lag", "4")
    page.locator("#lag").dispatch_event("change")
    expect(page.locator("#replay-status")).to_contain_text(" events")
    # Picking the policy re-checks it after the editor's debounce, and a check reloads the
    # replay from its first event; on a slow machine that can land amid the steps below,
    # so step on (from wherever the replay is) until a verdict is awaited.
    waiting = page.locator("#stream .waiting")
    for _ in range(60):
        page.click("#replay-step")
        if waiting.count():
            break
    expect(waiting).to_contain_text("harm.moderation")
    page.fill("#pace", "20")
    page.click("#replay-play")
    expect(page.locator("#stream [data-cut]")).to_have_text("✂ cut by harm.moderation")
    expect(page.locator("#stream .unsent")).to_contain_text("I will kill you")


def test_the_tests_panel_runs_the_policys_own_cases(page: Page, ui_stack: Stack) -> None:
    _open(page, ui_stack)
    page.click("#tab-test")
    page.click("#run-tests")
    expect(page.locator("#test-status")).to_have_text("28 passed, 0 failed")
    expect(page.locator("#cases .pass")).to_have_count(28)
    page.fill("#policy", DEFAULT.replace('no_match: ["an @ sign alone"', 'no_match: ["a@b.co"', 1))
    expect(page.locator("#check-status")).to_contain_text("ok")
    page.click("#run-tests")
    expect(page.locator("#test-status")).to_have_text("27 passed, 1 failed")
    failed = page.locator("#cases tr", has=page.locator(".fail"))
    expect(failed).to_contain_text("should not fire on 'a@b.co'")


def test_the_edited_policy_downloads_as_yaml(page: Page, ui_stack: Stack, tmp_path: Path) -> None:
    _open(page, ui_stack)
    edited = DEFAULT.replace("name: default", "name: mine")
    page.fill("#policy", edited)
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "mine.yaml"
    saved = tmp_path / "mine.yaml"
    download.value.save_as(saved)
    assert saved.read_text() == edited


def test_tabs_work_from_the_keyboard(page: Page, ui_stack: Stack) -> None:
    _open(page, ui_stack)
    page.focus("#tab-try")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-replay")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-replay")).to_be_visible()
    expect(page.locator("#panel-try")).to_be_hidden()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#tab-live")).to_be_focused()


def test_live_shows_the_gateways_hits_by_rule(page: Page, ui_stack: Stack) -> None:
    client = ui_stack.client()
    stream = client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"X-Demo-Reply": json.dumps(f"Sure. {EMAIL_TEXT}")},
    )
    assert "jane.doe" not in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    _open(page, ui_stack)
    page.click("#tab-live")
    expect(page.locator("#live-active")).to_have_text("0")
    row = page.locator("#live-rules tr", has_text="pii.email")
    expect(row).to_contain_text("default")
    expect(page.locator("#panel-live")).not_to_contain_text("jane")


@pytest.fixture
def keyed_stack() -> Iterator[Stack]:
    yield from run_stack(lambda url: ui_settings(url, api_keys=("sk-gateway-test",)))


def test_a_gateway_with_client_keys_asks_for_one(page: Page, keyed_stack: Stack) -> None:
    page.goto(keyed_stack.gateway_url.removesuffix("/v1") + "/ui")
    expect(page.locator("#banner")).to_contain_text("needs a client key")
    expect(page.locator("#api-key")).to_be_focused()
    page.fill("#api-key", "sk-gateway-test")
    page.click("#key-form button")
    expect(page.locator("#check-status")).to_have_text(
        "policy.yaml: policy 'default' ok (15 rules)"
    )
    expect(page.locator("#banner")).to_be_hidden()
    stored = page.evaluate("() => sessionStorage.getItem('sluicegate-key')")
    assert stored is None  # kept in memory only unless asked
