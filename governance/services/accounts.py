"""Writes: accounts and their API tokens.

A token's plaintext is shown once, at creation; the database keeps only its SHA-256, so a
leaked backup or a read-only SQL injection yields no usable credential. SHA-256 without a
salt is enough here because keys are 256-bit random strings, not guessable passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from governance.errors import ApplicationError
from governance.models import ApiToken
from governance.permissions import Role
from governance.services.audit import audit_event_append


def token_hash(key: str) -> str:
    """What the database stores for an API key, and what authentication looks it up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, user: User, actor: Any = None) -> str:
    """Create an API token for ``user`` and return its plaintext key (shown only once)."""
    key = secrets.token_urlsafe(32)  # 43 characters, 256 bits
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, key_hash=token_hash(key), prefix=key[:8])
        audit_event_append(
            actor=actor,
            action="api_token.created",
            obj=token,
            payload={"user": user.username, "prefix": token.prefix},
        )
    return key


def user_create_with_role(
    *, username: str, role: Role | str, email: str = "", actor: Any = None
) -> tuple[User, str]:
    """Create a user in ``role``'s group with an API token; return the user and the key.

    The user gets no usable password: people sign in through the web UI only after an
    administrator sets one, and API clients use the token.
    """
    try:
        role = Role(role)
    except ValueError:
        raise ApplicationError(
            code="unknown_role",
            message=f"Unknown role {role!r}; use one of: {_role_list()}.",
            details={"role": [f"one of: {_role_list()}"]},
        ) from None
    try:
        with transaction.atomic():
            return _create_user(username=username, role=role, email=email, actor=actor)
    except IntegrityError:
        if not User.objects.filter(username=username).exists():
            raise
        # Lost a race with a concurrent creation of the same name.
        raise _username_taken(username) from None


def _create_user(*, username: str, role: Role, email: str, actor: Any) -> tuple[User, str]:
    if User.objects.filter(username=username).exists():
        raise _username_taken(username)
    user = User(username=username, email=email)
    user.set_unusable_password()
    user.full_clean()  # username characters and length, email syntax
    user.save()
    group, _ = Group.objects.get_or_create(name=role.value)
    user.groups.add(group)
    audit_event_append(
        actor=actor,
        action="user.created",
        obj=user,
        payload={"username": username, "role": role.value},
    )
    return user, api_token_create(user=user, actor=actor)


def _username_taken(username: str) -> ApplicationError:
    return ApplicationError(
        code="conflict",
        message=f"A user named {username!r} already exists.",
        details={"username": ["exists"]},
        status=409,
    )


def _role_list() -> str:
    return ", ".join(Role)
