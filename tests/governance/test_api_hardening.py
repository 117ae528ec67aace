"""Inputs that once gave a 500 give a 4xx in the error shape, and every answer carries a
request id that a server error's body and log record share (issue 12, "Operable").

The throwaway views below are this module's own URLconf (``pytest.mark.urls(__name__)``),
mounted beside the real API so one test can use both.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.test import Client
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from governance.errors import ApplicationError
from governance.log import JsonLinesFormatter
from governance.middleware import REQUEST_ID_MAX_LENGTH, RequestIdFilter
from governance.models import AuditEvent
from governance.services import erasure
from tests.governance.api_helpers import API, error_of
from tests.governance.web_helpers import browser, find

handler404 = "governance.errors.page_not_found"
handler500 = "governance.errors.server_error"
BEYOND_BIGINT = str(2**63)


class CrashApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request):
        raise RuntimeError("secret internals")


class UnavailableApi(APIView):
    """A 5xx the service raises on purpose (a broker outage, say)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request):
        raise ApplicationError("Broker down.", code="unavailable", status=503)


urlpatterns = [
    path("api/crash/", CrashApi.as_view()),
    path("api/unavailable/", UnavailableApi.as_view()),
    path("", include("governance.urls")),
]
pytestmark = pytest.mark.urls(__name__)


# --- inputs that gave a 500 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"erasure-requests/?offset={BEYOND_BIGINT}", "offset"),
        (f"audit/events/?after_seq={BEYOND_BIGINT}", "after_seq"),
    ],
)
def test_paging_beyond_bigint_is_a_400_naming_the_field(officer, query, field):
    error = error_of(officer.client.get(f"{API}/{query}"), 400, "invalid", field)

    assert field in error["details"]


def test_the_largest_bigint_offset_is_an_empty_page(officer):
    response = officer.client.get(f"{API}/erasure-requests/?offset={2**63 - 1}")

    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        (f"{API}/subjects/a%00b/lineage/", 400, "invalid"),
        (f"{API}/subjects/%00/lineage/", 400, "invalid"),
        (f"{API}/erasure-requests/1%00/", 404, "not_found"),
        (f"{API}/erasure-requests/%00/certificate/", 404, "not_found"),
        (f"{API}/models/1%00/", 404, "not_found"),
    ],
)
def test_a_nul_in_a_path_parameter_is_a_4xx(auditor, url, status, code):
    error_of(auditor.client.get(url), status, code)


@pytest.mark.parametrize("key", ["a\x00b", "tab\there", "caf\xe9"])
def test_an_idempotency_key_with_a_control_or_non_ascii_character_is_a_400(integration, key):
    response = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": "s-1"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    error_of(response, 400, "invalid", "Idempotency-Key")


def test_a_printable_idempotency_key_still_replays(integration):
    def file():
        return integration.client.post(
            f"{API}/erasure-requests/",
            {"subject_id": "s-1"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=" order 7/a=b ",
        )

    assert file().status_code == 201
    assert file()["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("url", ["/api/v1/no-such-thing/", "/api/nothing", "/api/"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_write_to_an_unknown_api_path_is_a_json_404_not_the_csrf_page(db, url, method):
    client = Client(enforce_csrf_checks=True)

    response = getattr(client, method)(url, {"a": 1}, content_type="application/json")

    error_of(response, 404, "not_found")


def test_a_forged_post_to_a_page_is_still_refused(db):
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "x"})

    assert response.status_code == 403


# --- request ids --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [f"{API}/health/", f"{API}/nothing/", "/accounts/login/"])
def test_every_answer_carries_a_generated_request_id(db, url):
    first, second = Client().get(url), Client().get(url)

    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_sane_incoming_request_id_is_kept(db):
    incoming = "edge-7.A_b" + "x" * (REQUEST_ID_MAX_LENGTH - 10)

    response = Client().get(f"{API}/health/", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming", ["", "a b", "a\nb", "x" * (REQUEST_ID_MAX_LENGTH + 1), "<script>", "é"]
)
def test_an_insane_incoming_request_id_is_replaced(db, incoming):
    response = Client().get(f"{API}/health/", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


@pytest.fixture
def json_log():
    """JSON lines from ``django.request`` and ``governance.errors``, through the filter
    LOGGING puts on its handlers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger(name) for name in ("django.request", "governance.errors")]
    for logger in loggers:
        logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for logger in loggers:
        logger.removeHandler(handler)


def test_a_crash_logs_its_traceback_under_the_request_id_in_its_body(db, json_log):
    response = Client(raise_request_exception=False).get("/api/crash/", HTTP_X_REQUEST_ID="rq-1")

    error = error_of(response, 500, "server_error")
    assert error["details"] == {"request_id": "rq-1"}
    assert response["X-Request-ID"] == "rq-1"
    assert "secret internals" not in response.content.decode()
    (entry,) = [e for e in json_log() if e["exc_info"]]
    assert entry["request_id"] == "rq-1"
    assert entry["exc_info"].endswith("RuntimeError: secret internals")


def test_a_5xx_the_service_raises_also_logs_and_names_the_request_id(db, json_log):
    response = Client().get("/api/unavailable/", HTTP_X_REQUEST_ID="rq-2")

    error = error_of(response, 503, "unavailable")
    assert error["details"] == {"request_id": "rq-2"}
    (entry,) = [e for e in json_log() if e["exc_info"]]
    assert entry["request_id"] == "rq-2"
    assert "ApplicationError: Broker down." in entry["exc_info"]


def test_a_record_outside_a_request_carries_a_dash():
    record = logging.LogRecord("lethe", logging.INFO, __file__, 1, "tick", (), None)

    RequestIdFilter().filter(record)

    assert record.request_id == "-"


def test_the_text_format_shows_the_request_id(settings):
    text = settings.LOGGING["formatters"].get("text")

    assert text is None or "%(request_id)s" in text["format"]
    for handler in settings.LOGGING["handlers"].values():
        assert "request_id" in handler["filters"]


# --- report bounds ------------------------------------------------------------------------


@pytest.fixture
def three_requests(integration, settings, django_capture_on_commit_callbacks):
    settings.LETHE_REPORT_MAX_ROWS = 2
    with django_capture_on_commit_callbacks(execute=False):
        for subject in ("a", "b", "c"):
            erasure.erasure_request_create(actor=integration.user, subject_ref=subject)


def exports():
    return list(AuditEvent.objects.filter(action="report.exported"))


@pytest.mark.parametrize("fmt", ["json", "csv", "pdf"])
def test_a_report_over_the_row_limit_is_a_400_naming_the_period(auditor, three_requests, fmt):
    response = auditor.client.get(f"{API}/reports/erasures/", {"format": fmt})

    error = error_of(response, 400, "report_too_large", "from")
    assert "more than 2 requests" in error["message"]
    assert set(error["details"]) == {"from", "to"}
    assert exports() == []


def test_a_report_at_the_row_limit_is_exported(auditor, three_requests, settings):
    settings.LETHE_REPORT_MAX_ROWS = 3

    response = auditor.client.get(f"{API}/reports/erasures/")

    assert response.status_code == 200, response.content
    assert response.json()["summary"]["total"] == 3


@pytest.mark.parametrize("fmt", ["", "csv"])
def test_the_report_page_shows_the_row_limit_on_its_from_field(officer, three_requests, fmt):
    query = {"from": "", "to": "", **({"format": fmt} if fmt else {})}

    page = browser(officer).get("/reports/", query)

    assert page.status_code == 200
    assert "Content-Disposition" not in page
    assert "more than 2 requests" in find(page, data_testid="error-from").text
    assert exports() == []
