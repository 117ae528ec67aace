"""manage.py lethe_user: create a user with a role and print a token for scripts."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.models import ApiToken
from governance.services.accounts import token_hash

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("lethe_user", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_creates_user_with_role_and_prints_only_the_token_on_stdout():
    out, err = run("carol", "--role", "privacy_officer", "--email", "carol@example.com")

    lines = out.splitlines()
    assert len(lines) == 1
    key = lines[-1]
    assert len(key) >= 40
    assert " " not in key
    user = User.objects.get(username="carol")
    assert user.email == "carol@example.com"
    assert list(user.groups.values_list("name", flat=True)) == ["privacy_officer"]
    assert ApiToken.objects.get(user=user).key_hash == token_hash(key)
    assert "carol" in err
    assert "only once" in err


def test_bad_role_lists_the_roles():
    with pytest.raises(CommandError, match="privacy_officer, auditor, integration, ml_engineer"):
        run("dave", "--role", "superhero")

    assert not User.objects.filter(username="dave").exists()


def test_role_is_required():
    with pytest.raises(CommandError, match="--role"):
        run("erin")


def test_existing_username_is_an_error():
    run("frank", "--role", "auditor")

    with pytest.raises(CommandError, match="already exists"):
        run("frank", "--role", "ml_engineer")


def test_invalid_username_or_email_is_an_error():
    with pytest.raises(CommandError, match="username"):
        run("bad name", "--role", "auditor")
    with pytest.raises(CommandError, match="email"):
        run("gina", "--role", "auditor", "--email", "not-an-email")

    assert not User.objects.exists()
