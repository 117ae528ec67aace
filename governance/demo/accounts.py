"""Step 2, the accounts: a privacy officer and an auditor who sign in with passwords, an
integration account with an API token, and an ML engineer; made once, reused after."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User

from governance.demo.console import Console
from governance.demo.state import credentials_path, credentials_read, credentials_write, rel
from governance.permissions import Role
from governance.selectors.demo import api_token_holds, user_in_group, user_named
from governance.services.accounts import api_token_create, user_create_with_role
from governance.services.demo import DemoError, demo_password_set

ACTOR = "manage.py demo"

# key: (username, role, signs in with a password)
PLAN = {
    "officer": ("demo-officer", Role.PRIVACY_OFFICER, True),
    "auditor": ("demo-auditor", Role.AUDITOR, True),
    "integration": ("demo-integration", Role.INTEGRATION, False),
    "engineer": ("demo-engineer", Role.ML_ENGINEER, False),
}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str | None = None  # people sign in with one; service accounts use tokens
    token: str | None = None


def accounts_ensure(console: Console, *, state_dir: Path) -> dict[str, DemoAccount]:
    """Create or reuse the four accounts, keeping the secrets the last run printed."""
    stored = credentials_read(console, state_dir=state_dir)
    accounts: dict[str, DemoAccount] = {}
    rows = []
    for key, (username, role, person) in PLAN.items():
        accounts[key], note = _account(key, username, role, person=person, stored=stored)
        rows.append((username, role.value, note))
    credentials_write(accounts, state_dir=state_dir)
    console.table(("account", "role", "state"), rows)
    kept = rel(credentials_path(state_dir))
    console.write(
        f"  Passwords and the API token are kept in {kept} (mode 0600); --reset makes new ones."
    )
    return accounts


def _account(
    key: str, username: str, role: Role, *, person: bool, stored: dict[str, str]
) -> tuple[DemoAccount, str]:
    # Every new account gets a token; only the integration account's is shown.
    user, new_token, created = _user(username, role)
    password = token = None
    if person:
        password, changed = _password(user, stored.get(username))
        note = "created" if created else ("password set" if changed else "reused")
    elif key == "integration":
        token, note = _token(user, new_token or stored.get(f"{username}:token"))
        note = "created" if created else note
    else:
        note = "created" if created else "reused"
    return DemoAccount(username, role.value, password, token), note


def _user(username: str, role: Role) -> tuple[User, str | None, bool]:
    user = user_named(username)
    if user is None:
        user, token = user_create_with_role(username=username, role=role, actor=ACTOR)
        return user, token, True
    if not user_in_group(user, role.value):
        raise DemoError(
            f"user {username!r} exists without the {role.value} role; the demo does not "
            "change other people's accounts. Rename it, or run with --reset."
        )
    if not user.is_active:
        raise DemoError(f"user {username!r} is deactivated; reactivate it or use --reset")
    return user, None, False


def _password(user: User, stored: str | None) -> tuple[str, bool]:
    if stored and user.check_password(stored):
        return stored, False
    password = stored or secrets.token_urlsafe(12)
    demo_password_set(actor=ACTOR, user=user, password=password)
    return password, True


def _token(user: User, key: str | None) -> tuple[str, str]:
    if key and api_token_holds(user=user, key=key):
        return key, "reused"
    return api_token_create(user=user, actor=ACTOR), "new API token"
