"""Fixtures for driving the real UI in headless Chromium.

`ui_node`: a real Lookout server (one per test module); `shop`: that server seeded with a small
shop's traces, logs and metrics (tests/ui/uikit.py); `browser`/`page`: Debian's Chromium through
Playwright (no browser download), a fresh page per test that fails the test on any JavaScript
error.
"""

from __future__ import annotations

import pytest

from lookout.devserver import LookoutProcess
from tests.ui.uikit import CHROMIUM, CHROMIUM_ARGS, UI_CONFIG, Shop, seed_shop


@pytest.fixture(scope="module")
def ui_node(tmp_path_factory):
    node = LookoutProcess(tmp_path_factory.mktemp("ui") / "data", UI_CONFIG).start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def shop(ui_node) -> Shop:
    return seed_shop(ui_node)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page (own storage); any uncaught JavaScript error or console error fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("console", lambda m: m.type == "error" and not _expected_console_error(m.text)
          and errors.append(f"console: {m.text}"))
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not errors, "JavaScript errors in the page:\n" + "\n".join(errors)


def _expected_console_error(text: str) -> bool:
    # A failed fetch of a bad query is logged by Chromium as a resource error: that is the
    # test's point, not a bug of the page.
    return "Failed to load resource" in text
