"""API tokens (hashed at rest), token authentication, roles and the OpenAPI scheme."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

from governance.api import authentication
from governance.errors import ApplicationError
from governance.models import ApiToken, AuditEvent
from governance.permissions import Action, Role, allowed
from governance.services import accounts
from governance.services.accounts import api_token_create, user_create_with_role
from tests.governance import throwaway_urls

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.governance.throwaway_urls")]


def token_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


# --- tokens at rest ---------------------------------------------------------------------


def test_token_is_long_random_and_stored_only_as_its_hash():
    user = User.objects.create_user("tess")

    key = api_token_create(user=user)
    other = api_token_create(user=user)

    assert len(key) >= 40
    assert key != other
    token = ApiToken.objects.get(prefix=key[:8])
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = [str(value) for value in ApiToken.objects.values_list().get(pk=token.pk)]
    assert not any(key in value for value in stored)
    assert AuditEvent.objects.filter(action="api_token.created").count() == 2


def test_user_create_with_role_creates_group_user_and_working_token():
    assert not Group.objects.filter(name="auditor").exists()

    user, key = user_create_with_role(username="audrey", role="auditor", email="a@example.com")

    assert list(user.groups.values_list("name", flat=True)) == ["auditor"]
    assert user.email == "a@example.com"
    assert not user.has_usable_password()
    assert ApiToken.objects.get(user=user).key_hash == accounts.token_hash(key)
    assert token_client(key).get("/api/whoami/").json()["user"] == "audrey"
    created = AuditEvent.objects.get(action="user.created")
    assert created.payload == {"username": "audrey", "role": "auditor"}


def test_user_create_rejects_existing_username():
    user_create_with_role(username="dup", role=Role.AUDITOR)

    with pytest.raises(ApplicationError) as caught:
        user_create_with_role(username="dup", role=Role.ML_ENGINEER)

    assert (caught.value.code, caught.value.status) == ("conflict", 409)
    assert User.objects.filter(username="dup").count() == 1


def test_user_create_rejects_unknown_role_and_lists_roles():
    with pytest.raises(ApplicationError, match="privacy_officer, auditor") as caught:
        user_create_with_role(username="x", role="admin")

    assert caught.value.code == "unknown_role"
    assert not User.objects.filter(username="x").exists()


def test_user_create_validates_username():
    with pytest.raises(ValidationError, match="username"):
        user_create_with_role(username="no spaces allowed!", role=Role.AUDITOR)

    assert not User.objects.exists()


def test_user_create_is_atomic():
    with (
        mock.patch.object(accounts, "api_token_create", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        user_create_with_role(username="halfway", role=Role.AUDITOR)

    assert not User.objects.filter(username="halfway").exists()
    assert not AuditEvent.objects.exists()


# --- authentication -----------------------------------------------------------------------


def test_valid_token_authenticates_and_sets_request_auth(engineer):
    response = engineer.client.get("/api/whoami/")

    assert response.status_code == 200
    assert response.json() == {"user": engineer.user.username, "token": engineer.key[:8]}


@pytest.mark.parametrize(
    "header",
    [
        "Token wrong-key-that-was-never-issued",
        "token wrong-key-that-was-never-issued",
        "Token",
        "Token two parts",
    ],
)
def test_bad_token_is_401_in_the_error_shape(engineer, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/whoami/")

    error = assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"
    assert "token" in error["message"].lower()


def test_non_ascii_token_is_401(engineer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token caf\u00e9".encode().decode("latin-1"))

    assert_error(client.get("/api/whoami/"), 401, "authentication_failed")


@pytest.mark.parametrize("header", [None, "Bearer something", "Basic dXNlcjpwYXNz"])
def test_missing_credentials_are_401_not_403(header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/whoami/")

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_inactive_user_is_rejected(engineer):
    User.objects.filter(pk=engineer.user.pk).update(is_active=False)

    response = engineer.client.get("/api/whoami/")

    assert_error(response, 401, "authentication_failed")


def test_session_authentication_also_works(engineer):
    client = APIClient()
    client.force_login(engineer.user)

    assert client.get("/api/engineer/").status_code == 200


# --- last_used_at -------------------------------------------------------------------------


def last_used(key):
    return ApiToken.objects.get(key_hash=accounts.token_hash(key)).last_used_at


def test_first_use_records_last_used_at(engineer):
    assert last_used(engineer.key) is None

    engineer.client.get("/api/whoami/")

    assert timezone.now() - last_used(engineer.key) < timedelta(seconds=5)


def test_last_used_at_is_written_at_most_once_a_minute(engineer):
    engineer.client.get("/api/whoami/")
    first = last_used(engineer.key)

    with CaptureQueriesContext(connection) as queries:
        engineer.client.get("/api/whoami/")

    assert last_used(engineer.key) == first
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


def test_stale_last_used_at_is_refreshed_by_a_conditional_update(engineer):
    long_ago = timezone.now() - timedelta(minutes=5)
    ApiToken.objects.filter(user=engineer.user).update(last_used_at=long_ago)

    with CaptureQueriesContext(connection) as queries:
        engineer.client.get("/api/whoami/")

    assert last_used(engineer.key) > long_ago
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    set_clause, where_clause = updates[0].split(" WHERE ")
    assert "last_used_at" in set_clause
    assert "key_hash" not in set_clause
    assert "last_used_at" in where_clause


def test_touch_does_not_overwrite_a_concurrent_fresher_write(engineer):
    token = ApiToken.objects.get(user=engineer.user)  # read before the other request
    fresh = timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=fresh)  # the other request

    authentication._touch(token)

    assert ApiToken.objects.get(pk=token.pk).last_used_at == fresh


# --- roles ----------------------------------------------------------------------------------


def test_role_grants_access(engineer):
    response = engineer.client.get("/api/engineer/")

    assert response.status_code == 200
    assert response.json() == {"user": engineer.user.username}


def test_other_role_is_403_naming_the_required_roles(auditor):
    response = auditor.client.get("/api/engineer/")

    error = assert_error(response, 403, "permission_denied")
    assert error["message"] == "This action requires one of the roles: ml_engineer."


def test_any_listed_role_grants_access(officer, auditor, engineer):
    assert officer.client.get("/api/readers/").status_code == 200
    assert auditor.client.get("/api/readers/").status_code == 200
    error = assert_error(engineer.client.get("/api/readers/"), 403, "permission_denied")
    assert "privacy_officer, auditor" in error["message"]


def test_token_user_and_roles_are_read_in_one_statement(engineer):
    engineer.client.get("/api/engineer/")  # the first use also writes last_used_at

    with CaptureQueriesContext(connection) as queries:
        response = engineer.client.get("/api/engineer/")

    assert response.status_code == 200
    assert len(queries.captured_queries) == 1


def test_a_token_user_holds_the_roles_of_every_group():
    user = User.objects.create_user("both")
    user.groups.add(*(Group.objects.get_or_create(name=r)[0] for r in ("auditor", "ml_engineer")))
    user.groups.add(Group.objects.create(name="not-a-role"))
    client = token_client(api_token_create(user=user))

    assert client.get("/api/engineer/").status_code == 200
    assert client.get("/api/readers/").status_code == 200


def test_user_without_any_role_is_403():
    user = User.objects.create_user("norole")

    response = token_client(api_token_create(user=user)).get("/api/engineer/")

    assert_error(response, 403, "permission_denied")


def test_superuser_passes_every_role_check():
    admin = User.objects.create_superuser("root", password="x" * 12)

    assert token_client(api_token_create(user=admin)).get("/api/engineer/").status_code == 200


def test_anonymous_is_401_on_role_protected_view():
    assert_error(APIClient().get("/api/engineer/"), 401, "not_authenticated")


def test_allowed_builds_a_permission_class_named_after_its_action():
    permission = allowed(Action.AUDIT_READ)

    assert permission.__name__ == "Allowed(audit_read)"
    assert issubclass(permission, BasePermission)


# --- OpenAPI ------------------------------------------------------------------------------


def test_schema_declares_the_token_scheme():
    schema = SchemaGenerator(patterns=throwaway_urls.urlpatterns).get_schema(public=True)

    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert scheme == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    assert {"tokenAuth": []} in schema["paths"]["/api/engineer/"]["get"]["security"]
