"""Browser tests: real headless Chromium, driven by Playwright (sync API), against
pytest-django's ``live_server`` (which also serves the static files).

Chromium is Debian's ``/usr/bin/chromium`` (CI installs it with apt); Playwright's own
browser downloads are never used. Without it the browser tests are skipped, and say why.

Playwright's sync API keeps an asyncio loop running on the main thread while it is
started, and Django refuses ORM calls from a thread with a running loop. The tests talk to
the database between browser steps on purpose, so ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set for
exactly as long as Playwright runs (one module at a time), then restored.

``LETHE_SCREENSHOTS=1`` makes the tests save the README's screenshots (1280x800) to
``docs/screenshots/``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context (no cookies) on the live server, 1280x800."""
    context = chromium.new_context(
        base_url=live_server.url, viewport=VIEWPORT, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def with_password(persona) -> str:
    """Give a persona's user (created by user_create_with_role) a password to sign in with."""
    password = secrets.token_urlsafe(12)
    persona.user.set_password(password)
    persona.user.save()
    return password


def sign_in(page, persona) -> None:
    """Sign in through /accounts/login/ like a person would; lands on the dashboard."""
    password = with_password(persona)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(persona.user.get_username())
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    assert page.get_by_test_id("current-user").inner_text().startswith(persona.user.get_username())


def screenshot(page, name: str, *, full_page: bool = False) -> None:
    """Save ``docs/screenshots/NAME.png`` when LETHE_SCREENSHOTS=1."""
    if os.environ.get("LETHE_SCREENSHOTS") != "1":
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=full_page)
