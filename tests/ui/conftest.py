"""A real headless Chromium (Debian's ``chromium``) driven by Playwright, in front of a
real gateway with the playground on and the demo upstream, over loopback.

Playwright's own browser download is not used: ``executable_path`` points at the system
browser (``SLUICEGATE_CHROMIUM`` overrides where). The background-networking switches
keep Chromium from dialling out, which a closed network answers with refusals. Each test
leaves a full-page screenshot in ``SLUICEGATE_UI_ARTIFACTS`` if set, else in the pytest
temporary directory's ``ui-screenshots*`` folder (the path is printed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gateway.settings import Settings
from tests.e2e.conftest import Stack, run_stack

CHROMIUM = Path(os.environ.get("SLUICEGATE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Generous: two shared cores may be busy with other suites; a pass is never slower for it.
expect.set_options(timeout=20_000)

if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (CI does) "
        "or set SLUICEGATE_CHROMIUM",
        allow_module_level=True,
    )


def ui_settings(demo_url: str, **more: Any) -> Settings:
    values: dict[str, Any] = {"upstream_url": demo_url, "policy_reload_seconds": 0, "ui": True}
    return Settings(_env_file=None, **(values | more))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def ui_stack() -> Iterator[Stack]:
    yield from run_stack(ui_settings)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("SLUICEGATE_UI_ARTIFACTS")
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("ui-screenshots")
    print(f"\nplayground screenshots: {folder}")
    return folder


@pytest.fixture
def page(browser: Browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page; script errors fail the test, and a screenshot is kept either way."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    opened.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    context.close()
    assert not errors, errors
