"""The UI passes its own Content-Security-Policy in a real browser: every page an officer
opens loads its stylesheet and script with no violation reported, while an inline script
planted in a page is refused (so the check can fail, and the policy is enforced)."""

from __future__ import annotations

import pytest

from governance.services import erasure
from tests.browser.conftest import sign_in
from tests.governance.api_helpers import create_dataset, tiny_model

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# Runs before any page script; CSP does not apply to it (the browser injects it).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture
def pages(officer, engineer, integration, sample):
    """The officer's pages, with a dataset, a model and a filed request to show."""
    dataset_id = create_dataset(integration.client, sample)
    created = engineer.client.post("/api/v1/models/", tiny_model(dataset_id), format="json")
    assert created.status_code == 201, created.json()
    subject = sample.train[0].subject_id
    req, _ = erasure.erasure_request_create(actor=officer.user, subject_ref=subject)
    return [
        "/",
        "/requests/",
        f"/requests/{req.pk}/",
        f"/requests/new/?subject_ref={subject}",
        f"/lineage/?subject_ref={subject}",
        "/models/",
        f"/models/{created.json()['id']}/",
        "/audit/",
        "/reports/",
    ]


def _watch(page) -> list[str]:
    """Console messages about the policy (Chromium logs every refusal as an error)."""
    messages: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            messages.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return messages


def test_every_page_passes_the_content_security_policy(page, officer, pages):
    console = _watch(page)
    page.goto("/accounts/login/")
    assert page.evaluate("window.__cspViolations") == []
    sign_in(page, officer)

    for path in pages:
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        # The stylesheet applied: the header is laid out by lethe.css, not the defaults.
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px", path
        assert page.evaluate("window.__cspViolations") == [], path
    assert console == []


def test_an_inline_script_planted_in_a_page_is_refused(page, officer):
    console = _watch(page)
    sign_in(page, officer)

    # As an injection would: an inline <script> element added to the page.
    page.evaluate(
        """() => {
          const planted = document.createElement("script");
          planted.textContent = "window.__planted = true;";
          document.head.appendChild(planted);
        }"""
    )
    page.wait_for_function("window.__cspViolations.length > 0")

    assert page.evaluate("window.__planted === undefined")
    assert page.evaluate("window.__cspViolations")[0].startswith("script-src")
    assert console
