"""Keyboard only: the login form can be reached, filled and submitted with Tab and Enter,
and every control focused on the way shows a visible focus outline."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import with_password

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
MAX_TABS = 12

FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {
    tag: el.tagName.toLowerCase(), name: el.getAttribute("name") || "",
    outlineStyle: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth) || 0,
    focusVisible: el.matches(":focus-visible"),
  };
}"""


def _tab_to(page, name: str) -> list[dict]:
    """Press Tab until the control called ``name`` has focus; return what was focused.

    The username field is autofocused, so this goes round the whole page once: password,
    the button, out of the document, then the skip link, the home link and the username.
    """
    seen = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused["tag"] == "body":  # focus left the document for the browser's own UI
            continue
        _assert_visible_outline(focused)
        seen.append(focused)
        if focused["name"] == name:
            return seen
    pytest.fail(f"{name!r} not reached with {MAX_TABS} presses of Tab: {seen}")


def _assert_visible_outline(focused: dict) -> None:
    assert focused["focusVisible"], focused
    assert focused["outlineStyle"] not in ("none", "hidden"), focused
    assert focused["outlineWidth"] >= 2, focused


def test_login_with_the_keyboard_only_and_a_visible_focus(page, officer):
    password = with_password(officer)
    page.goto("/accounts/login/")

    seen = _tab_to(page, "username")
    assert [f["tag"] for f in seen][-3:] == ["a", "a", "input"], seen  # skip link, home
    page.keyboard.type(officer.user.get_username())
    page.keyboard.press("Tab")
    focused = page.evaluate(FOCUSED)
    assert focused["name"] == "password", focused
    _assert_visible_outline(focused)
    page.keyboard.type(password)
    page.keyboard.press("Enter")

    page.wait_for_url("**/")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_contain_text(officer.user.get_username())
