"""Every error the API can give comes back as {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from governance.errors import ApplicationError

pytestmark = pytest.mark.urls("tests.governance.throwaway_urls")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_application_error_defaults():
    error = ApplicationError("Nope.")

    assert (error.code, error.message, error.details, error.status) == (
        "invalid",
        "Nope.",
        None,
        400,
    )
    assert str(error) == "Nope."


@pytest.mark.parametrize(
    ("name", "status", "code", "message", "details"),
    [
        ("application", 409, "model_not_ready", "Train it first.", {"model": 3}),
        ("application-default", 400, "invalid", "Plain failure.", None),
        ("django-validation-dict", 400, "invalid", "name: Bad name.", {"name": ["Bad name."]}),
        ("django-validation-all", 400, "invalid", "Clash.", {"non_field_errors": ["Clash."]}),
        (
            "django-validation-plain",
            400,
            "invalid",
            "Plain message.",
            {"non_field_errors": ["Plain message."]},
        ),
        (
            "drf-validation-plain",
            400,
            "invalid",
            "Not like that.",
            {"non_field_errors": ["Not like that."]},
        ),
        ("django-permission", 403, "permission_denied", "nope", None),
        ("drf-permission", 403, "permission_denied", None, None),
        ("http404", 404, "not_found", "no such thing", None),
        ("drf-not-found", 404, "not_found", None, None),
        ("not-acceptable", 406, "not_acceptable", None, None),
        ("throttled", 429, "throttled", None, {"retry_after": 7}),
        ("too-big", 413, "payload_too_large", None, {"limit": 2_621_440}),
        ("too-big-wrapped", 413, "payload_too_large", None, {"limit": 2_621_440}),
        ("too-many-fields", 413, "payload_too_large", None, {"limit": 1000}),
    ],
)
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2_621_440)
def test_raised_errors_render_in_the_shape(name, status, code, message, details):
    error = assert_error(APIClient().get(f"/api/raise/{name}/"), status, code)

    assert error["details"] == details
    if message is not None:
        assert error["message"] == message
    else:
        assert error["message"]


def test_throttled_sets_retry_after():
    response = APIClient().get("/api/raise/throttled/")

    assert response["Retry-After"] == "7"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2_621_440)
def test_payload_too_large_message_names_the_limit():
    error = assert_error(APIClient().get("/api/raise/too-big/"), 413, "payload_too_large")

    assert "2621440 bytes" in error["message"]


def test_drf_validation_names_the_first_bad_field_and_keeps_all():
    response = APIClient().post("/api/validate/", {"lora": {"rank": 0}}, format="json")

    error = assert_error(response, 400, "invalid")
    assert error["message"] == "name: This field is required."
    assert error["details"] == {
        "name": ["This field is required."],
        "lora": {"rank": ["Ensure this value is greater than or equal to 1."]},
    }


def test_nested_validation_message_uses_a_dotted_path():
    response = APIClient().post("/api/validate/", {"name": "m", "lora": {}}, format="json")

    error = assert_error(response, 400, "invalid")
    assert error["message"] == "lora.rank: This field is required."


def test_malformed_json_is_parse_error():
    response = APIClient().post("/api/validate/", data='{"name": ', content_type="application/json")

    error = assert_error(response, 400, "parse_error")
    assert "JSON" in error["message"]


def test_absurdly_nested_json_is_parse_error_not_500():
    body = "[" * 100_000 + "]" * 100_000

    response = APIClient().post("/api/validate/", data=body, content_type="application/json")

    assert_error(response, 400, "parse_error")


def test_unsupported_media_type_is_415():
    response = APIClient().post("/api/validate/", data="name=x", content_type="text/plain")

    error = assert_error(response, 415, "unsupported_media_type")
    assert "text/plain" in error["message"]


def test_form_posts_are_refused_by_default():
    response = APIClient().post("/api/validate/", {"name": "x"})  # multipart by default

    assert_error(response, 415, "unsupported_media_type")


def test_method_not_allowed_is_405():
    error = assert_error(APIClient().delete("/api/validate/"), 405, "method_not_allowed")

    assert "DELETE" in error["message"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_oversize_json_body_is_413_with_the_limit():
    body = json.dumps({"name": "x" * 200, "lora": {"rank": 1}})

    response = APIClient().post("/api/validate/", data=body, content_type="application/json")

    error = assert_error(response, 413, "payload_too_large")
    assert "100 bytes" in error["message"]
    assert error["details"] == {"limit": 100}


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=2)
def test_too_many_form_fields_is_413():
    fields = {f"field{i}": "x" for i in range(5)}

    response = APIClient().post("/api/rows/", fields)  # multipart

    error = assert_error(response, 413, "payload_too_large")
    assert "2 fields" in error["message"]


# --- Django's own 404 and 500 ----------------------------------------------------------------


@pytest.mark.urls("governance.urls")
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/nothing", "/api/"])
def test_unknown_api_path_is_json_404(client, path):
    error = assert_error(client.get(path), 404, "not_found")

    assert path in error["message"]


@pytest.mark.urls("governance.urls")
def test_unknown_page_outside_api_is_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_crash_under_api_is_json_500_without_internals():
    client = Client(raise_request_exception=False)

    response = client.get("/api/raise/crash/")

    error = assert_error(response, 500, "server_error")
    assert "secret internals" not in json.dumps(error)


def test_crash_outside_api_is_html_500():
    client = Client(raise_request_exception=False)

    response = client.get("/crash/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_real_urlconf_declares_the_handlers():
    from governance import urls

    assert urls.handler404 == "governance.errors.page_not_found"
    assert urls.handler500 == "governance.errors.server_error"
