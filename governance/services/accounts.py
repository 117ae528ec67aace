"""Writes: accounts, their passwords and their API tokens.

A token's plaintext is shown once, at creation; the database keeps only its SHA-256, so a
leaked backup or a read-only SQL injection yields no usable credential. SHA-256 without a
salt is enough here because keys are 256-bit random strings, not guessable passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.errors import ApplicationError
from governance.models import ApiToken
from governance.permissions import Role
from governance.services.audit import audit_event_append

NAME_MAX_LENGTH = 100  # ApiToken.name
# "Expire now" sent by a client whose clock is a little ahead must not read as the past.
EXPIRY_SKEW = timedelta(minutes=5)


def token_hash(key: str) -> str:
    """What the database stores for an API key, and what authentication looks it up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def token_key_new() -> str:
    """A fresh key: 43 URL-safe characters (256 bits) that never begin with ``-``.

    Operators name tokens by the key's first characters on the command line
    (``lethe_token revoke PREFIX``); a prefix beginning with ``-`` would be read as an
    option there, so such a draw (1 in 64) is drawn again.
    """
    while (key := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return key


def api_token_create(
    *, user: User, actor: Any = None, name: str = "", expires_at: datetime | None = None
) -> str:
    """Create an API token for ``user`` and return its plaintext key (shown only once)."""
    return api_token_issue(user=user, actor=actor, name=name, expires_at=expires_at)[1]


def api_token_issue(
    *, user: User, actor: Any = None, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create an API token; return the row and the plaintext key, which is never stored."""
    name = name.strip()
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            code="invalid",
            message=f"name: at most {NAME_MAX_LENGTH} characters",
            details={"name": [f"at most {NAME_MAX_LENGTH} characters"]},
        )
    if expires_at is not None:
        _not_past(expires_at, now=timezone.now())
    key = token_key_new()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            key_hash=token_hash(key),
            prefix=key[:8],
            name=name,
            expires_at=expires_at,
        )
        audit_event_append(
            actor=actor,
            action="api_token.created",
            obj=token,
            payload={
                "user": user.username,
                "prefix": token.prefix,
                "name": name,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, key


def api_token_revoke(*, actor: Any, token: ApiToken) -> ApiToken:
    """Revoke a token at once; the row stays (with ``revoked_at``) for the trail."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        if token.revoked_at is not None:
            raise _token_conflict(f"revoked_at: token {token.prefix}… is already revoked")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_event_append(
            actor=actor,
            action="api_token.revoked",
            obj=token,
            payload={"user": token.user.username, "prefix": token.prefix},
        )
    return token


def api_token_expire(
    *, actor: Any, token: ApiToken, expires_at: datetime | None = None
) -> ApiToken:
    """Bring a token's expiry forward: to ``expires_at``, or now when it is None.

    An expiry is never pushed back (a leaked key must not be given a longer life by whoever
    holds it): create a new token instead.
    """
    now = timezone.now()
    at = now if expires_at is None else expires_at
    _not_past(at, now=now - EXPIRY_SKEW)
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        state = token.state(now)
        if state is not ApiToken.State.ACTIVE:
            raise _token_conflict(f"expires_at: token {token.prefix}… is already {state}")
        if token.expires_at is not None and at > token.expires_at:
            raise _token_conflict(
                f"expires_at: token {token.prefix}… already expires at "
                f"{token.expires_at.isoformat()}; an expiry can only be brought forward"
            )
        token.expires_at = at
        token.save(update_fields=["expires_at"])
        audit_event_append(
            actor=actor,
            action="api_token.expired",
            obj=token,
            payload={
                "user": token.user.username,
                "prefix": token.prefix,
                "expires_at": at.isoformat(),
            },
        )
    return token


def _not_past(at: datetime, *, now: datetime) -> None:
    if at < now:
        raise ApplicationError(
            code="invalid",
            message="expires_at: must not be in the past",
            details={"expires_at": ["in the past"]},
        )


def _token_conflict(message: str) -> ApplicationError:
    return ApplicationError(code="conflict", status=409, message=message)


def user_password_set(*, actor: Any, user: User, password: str) -> None:
    """Set ``user``'s password after Django's validators (``AUTH_PASSWORD_VALIDATORS``).

    The audit event names the user only: the password, even hashed, never enters the trail.
    """
    _password_check(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_event_append(
            actor=actor,
            action="user.password_set",
            obj=user,
            payload={"username": user.username},
        )


def _password_check(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(
            code="invalid",
            message="password: " + " ".join(exc.messages),
            details={"password": list(exc.messages)},
        ) from None


def user_create_with_role(
    *,
    username: str,
    role: Role | str,
    email: str = "",
    actor: Any = None,
    password: str | None = None,
) -> tuple[User, str]:
    """Create a user in ``role``'s group with an API token; return the user and the key.

    Without ``password`` the user gets no usable password: people sign in through the web
    UI only after one is set (``user_password_set``), and API clients use the token. A
    password is checked before anything is created, so a refused one leaves no user behind.
    """
    if password is not None:
        _password_check(password, User(username=username, email=email))
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
            user, key = _create_user(username=username, role=role, email=email, actor=actor)
            if password is not None:
                user_password_set(actor=actor, user=user, password=password)
            return user, key
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
