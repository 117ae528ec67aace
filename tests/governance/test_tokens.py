"""API tokens that expire and can be revoked (API and ``manage.py lethe_token``), and
passwords set with ``lethe_user --password-stdin``; every change audited."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from governance.models import ApiToken, AuditEvent
from governance.services import accounts
from governance.services.accounts import api_token_create
from tests.governance.api_helpers import API, error_of

pytestmark = pytest.mark.django_db

TOKENS = f"{API}/tokens/"
# Any endpoint every role may call: the token listing itself.
PROBE = TOKENS


def client_for(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def signed_in(persona):
    """The persona's web session: tokens are created signed in, not with another token."""
    client = APIClient()
    client.force_login(persona.user)
    return client


def token_of(key):
    return ApiToken.objects.get(prefix=key[:8])


def run(command, *args, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err, **({"stdin": stdin} if stdin else {}))
    return out.getvalue(), err.getvalue()


# --- authentication refuses expired and revoked tokens ------------------------------------


def test_a_revoked_token_is_refused_with_401_saying_so(integration):
    assert integration.client.get(PROBE).status_code == 200
    ApiToken.objects.filter(user=integration.user).update(revoked_at=timezone.now())

    error = error_of(integration.client.get(PROBE), 401, "authentication_failed")

    assert "revoked" in error["message"]


def test_an_expired_token_is_refused_with_401_saying_so(integration):
    ApiToken.objects.filter(user=integration.user).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    error = error_of(integration.client.get(PROBE), 401, "authentication_failed")

    assert "expired" in error["message"]


def test_a_token_with_a_future_expiry_still_works(integration):
    ApiToken.objects.filter(user=integration.user).update(
        expires_at=timezone.now() + timedelta(hours=1)
    )

    assert integration.client.get(PROBE).status_code == 200


# --- the API ------------------------------------------------------------------------------


def test_create_shows_the_key_once_and_the_listing_never(integration):
    at = (timezone.now() + timedelta(days=30)).replace(microsecond=0)

    response = signed_in(integration).post(
        TOKENS, {"name": "nightly sync", "expires_at": at.isoformat()}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert body["prefix"] == key[:8]
    assert (body["name"], body["user"], body["state"]) == ("nightly sync", "ingrid-bot", "active")
    assert client_for(key).get(PROBE).status_code == 200
    listing = integration.client.get(TOKENS).json()
    assert listing["count"] == 2
    assert all("key" not in row for row in listing["results"])
    assert key not in integration.client.get(TOKENS).content.decode()
    event = AuditEvent.objects.filter(action="api_token.created").last()
    assert event.payload["name"] == "nightly sync"
    assert key not in str(event.payload)


def test_create_refuses_an_expiry_in_the_past_and_unknown_fields(integration):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    session = signed_in(integration)
    error_of(
        session.post(TOKENS, {"expires_at": past}, format="json"),
        400,
        "invalid",
        names="expires_at",
    )
    error_of(session.post(TOKENS, {"scope": "all"}, format="json"), 400, "invalid", "scope")
    assert ApiToken.objects.filter(user=integration.user).count() == 1


def test_a_token_cannot_create_tokens(integration):
    """Otherwise a leaked key could mint replacements and outlive its own revocation."""
    created = AuditEvent.objects.filter(action="api_token.created").count()

    error_of(
        integration.client.post(TOKENS, {"name": "persistence"}, format="json"),
        403,
        "token_cannot_create_tokens",
    )

    assert ApiToken.objects.filter(user=integration.user).count() == 1
    assert AuditEvent.objects.filter(action="api_token.created").count() == created


def test_each_account_lists_only_its_own_tokens_and_officers_list_all(
    officer, auditor, integration
):
    mine = integration.client.get(TOKENS).json()
    assert [row["user"] for row in mine["results"]] == ["ingrid-bot"]
    assert {row["user"] for row in auditor.client.get(TOKENS).json()["results"]} == {"arthur"}

    everyone = officer.client.get(TOKENS).json()

    assert {row["user"] for row in everyone["results"]} == {"olivia", "arthur", "ingrid-bot"}


def test_revoke_cuts_a_token_off_at_once_and_is_audited(integration):
    second = api_token_create(user=integration.user, name="spare")
    token = token_of(second)

    response = integration.client.post(f"{TOKENS}{token.pk}/revoke/")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "revoked"
    assert client_for(second).get(PROBE).status_code == 401
    assert integration.client.get(PROBE).status_code == 200  # the other token still works
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.object_id, event.actor) == (str(token.pk), "user:ingrid-bot")
    error_of(integration.client.post(f"{TOKENS}{token.pk}/revoke/"), 409, "conflict", "revoked_at")


def test_another_accounts_token_is_404_but_an_officer_may_revoke_it(officer, auditor, integration):
    victim = token_of(integration.key)

    error_of(auditor.client.post(f"{TOKENS}{victim.pk}/revoke/"), 404, "not_found")
    error_of(auditor.client.post(f"{TOKENS}{victim.pk}/expire/"), 404, "not_found")
    assert integration.client.get(PROBE).status_code == 200

    assert officer.client.post(f"{TOKENS}{victim.pk}/revoke/").status_code == 200
    assert integration.client.get(PROBE).status_code == 401
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.actor, event.payload["user"]) == ("user:olivia", "ingrid-bot")


def test_expire_now_or_earlier_never_later(integration):
    spare = api_token_create(user=integration.user)
    token = token_of(spare)
    soon = timezone.now() + timedelta(hours=1)
    url = f"{TOKENS}{token.pk}/expire/"

    response = integration.client.post(url, {"expires_at": soon.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    later = (soon + timedelta(days=1)).isoformat()
    error = error_of(
        integration.client.post(url, {"expires_at": later}, format="json"),
        409,
        "conflict",
        names="expires_at",
    )
    assert "brought forward" in error["message"]
    assert client_for(spare).get(PROBE).status_code == 200

    assert integration.client.post(url, {}, format="json").status_code == 200

    assert client_for(spare).get(PROBE).status_code == 401
    assert AuditEvent.objects.filter(action="api_token.expired").count() == 2
    error_of(integration.client.post(url, {}, format="json"), 409, "conflict", "expires_at")


def test_tokens_need_a_signed_in_caller():
    error_of(APIClient().get(TOKENS), 401, "not_authenticated")


# --- manage.py lethe_token ----------------------------------------------------------------


def test_a_key_never_begins_with_a_dash(monkeypatch):
    # A prefix such as "-KKcsmWJ" would be read as an option by ``lethe_token revoke``;
    # the first draws here begin with "-", so the key must come from a later draw.
    draws = iter(["-" + "a" * 42, "-" + "b" * 42, "c" * 43])
    monkeypatch.setattr(accounts.secrets, "token_urlsafe", lambda n: next(draws))
    assert accounts.token_key_new() == "c" * 43


def test_command_lists_expires_and_revokes_by_prefix(integration, officer):
    out, _ = run("lethe_token", "list")
    assert integration.key[:8] in out
    assert "ingrid-bot" in out
    assert integration.key not in out

    run("lethe_token", "expire", integration.key[:6])

    assert token_of(integration.key).state(timezone.now()) == ApiToken.State.EXPIRED
    out, _ = run("lethe_token", "list", "--user", "ingrid-bot")
    assert "expired" in out
    assert "olivia" not in out

    run("lethe_token", "revoke", officer.key[:8])

    assert officer.client.get(PROBE).status_code == 401
    actors = set(
        AuditEvent.objects.filter(
            action__in=["api_token.expired", "api_token.revoked"]
        ).values_list("actor", flat=True)
    )
    assert actors == {"manage.py lethe_token"}


def test_command_create_prints_only_the_key(integration):
    out, err = run("lethe_token", "create", "ingrid-bot", "--name", "ci")

    key = out.strip()
    assert client_for(key).get(PROBE).status_code == 200
    assert token_of(key).name == "ci"
    assert "only once" in err


def test_command_refuses_short_unknown_and_ambiguous_prefixes(integration):
    with pytest.raises(CommandError, match="at least 4"):
        run("lethe_token", "revoke", "ab")
    with pytest.raises(CommandError, match="no token"):
        run("lethe_token", "revoke", "zzzz-not-a-prefix")
    twin = api_token_create(user=integration.user)
    ApiToken.objects.filter(prefix=twin[:8]).update(prefix=integration.key[:8])
    with pytest.raises(CommandError, match="names 2 tokens"):
        run("lethe_token", "revoke", integration.key[:8])
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()


# --- lethe_user --password-stdin -----------------------------------------------------------

PASSWORD = "correct horse battery staple 42"


def test_password_stdin_sets_an_existing_users_password_and_audits_no_secret(auditor):
    out, err = run("lethe_user", "arthur", "--password-stdin", stdin=io.StringIO(PASSWORD + "\n"))

    user = User.objects.get(username="arthur")
    assert user.check_password(PASSWORD)
    assert PASSWORD not in out + err
    event = AuditEvent.objects.get(action="user.password_set")
    assert (event.object_id, event.payload) == (str(user.pk), {"username": "arthur"})
    assert user.password not in str(event.payload)


def test_password_stdin_with_role_creates_a_user_who_can_sign_in():
    out, _ = run(
        "lethe_user", "paula", "--role", "privacy_officer", "--password-stdin",
        stdin=io.StringIO(PASSWORD + "\r\n"),
    )  # fmt: skip

    assert User.objects.get(username="paula").check_password(PASSWORD)
    assert len(out.strip()) >= 40  # the token is still printed
    assert AuditEvent.objects.filter(action="user.password_set").count() == 1


@pytest.mark.parametrize(
    ("password", "reason"),
    [("x7#q", "too short"), ("12345678901234", "entirely numeric"), ("password123", "common")],
)
def test_a_weak_password_is_refused_with_the_validators_reason(auditor, password, reason):
    with pytest.raises(CommandError, match=reason) as caught:
        run("lethe_user", "arthur", "--password-stdin", stdin=io.StringIO(password + "\n"))

    assert password not in str(caught.value)
    assert not User.objects.get(username="arthur").has_usable_password()
    assert not AuditEvent.objects.filter(action="user.password_set").exists()


def test_a_weak_password_at_creation_creates_no_user():
    with pytest.raises(CommandError, match="too short"):
        run("lethe_user", "quinn", "--role", "auditor", "--password-stdin",
            stdin=io.StringIO("short\n"))  # fmt: skip

    assert not User.objects.filter(username="quinn").exists()


def test_password_stdin_refuses_an_empty_line_and_an_unknown_user(auditor):
    with pytest.raises(CommandError, match="no password"):
        run("lethe_user", "arthur", "--password-stdin", stdin=io.StringIO("\n"))
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("lethe_user", "nobody", "--password-stdin", stdin=io.StringIO(PASSWORD + "\n"))
