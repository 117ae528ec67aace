"""Who may call the API: roles as Django groups, and hashed API tokens.

A token's plaintext is shown once, at creation; the database keeps only its SHA-256, so a
leaked backup or a read-only SQL injection yields no usable credential. SHA-256 without a
salt is enough here because keys are 256-bit random strings, not guessable passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from governance.errors import ApplicationError
from governance.models import ApiToken
from governance.permissions import Role
from governance.services.audit import audit_event_append

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.views import APIView

KEYWORD = "Token"
# Writing last_used_at on every request would turn every read into a write; a minute's
# precision is enough to tell a live token from an abandoned one.
LAST_USED_PRECISION = timedelta(minutes=1)


def _role_list() -> str:
    return ", ".join(Role)


def token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# --- services ---------------------------------------------------------------------------


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


# --- authentication ---------------------------------------------------------------------


class HashedTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>``, looked up by the key's SHA-256."""

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None  # not ours: let the next authenticator (session) try
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: use 'Authorization: Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(key)).first()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        _touch(token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A WWW-Authenticate value is what makes DRF answer 401 rather than 403.
        return KEYWORD


def _touch(token: ApiToken) -> None:
    now = timezone.now()
    stale = now - LAST_USED_PRECISION
    if token.last_used_at is not None and token.last_used_at >= stale:
        return
    # Conditional UPDATE: concurrent requests write once, and no other column is touched.
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk
    ).update(last_used_at=now)
    token.last_used_at = now


# drf-spectacular's registry hook (__init_subclass__) is unannotated.
class HashedTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Shows the token scheme in the OpenAPI document (registered on import)."""

    target_class = HashedTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=KEYWORD
        )


# --- permissions ------------------------------------------------------------------------


class HasRole(BasePermission):
    """Allows users in any of ``required`` groups, and superusers. Build with ``roles()``."""

    required: ClassVar[tuple[Role, ...]] = ()
    message = "This action requires a role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False  # DRF turns this into 401 for anonymous requests
        if user.is_superuser:
            return True
        return user.groups.filter(name__in=[role.value for role in self.required]).exists()


def roles(*names: Role | str) -> type[HasRole]:
    """A permission class for views open to any of ``names``, e.g. ``roles("auditor")``.

    Unknown names fail at import time, so a typo cannot silently lock everyone out.
    """
    if not names:
        raise ValueError("roles() needs at least one role")
    try:
        required = tuple(Role(name) for name in names)
    except ValueError as exc:
        raise ValueError(f"{exc}; roles are: {_role_list()}") from None
    listed = ", ".join(required)

    class _HasRole(HasRole):
        message = f"This action requires one of the roles: {listed}."

    _HasRole.required = required
    _HasRole.__name__ = _HasRole.__qualname__ = f"HasRole({listed})"
    return _HasRole


def user_has_role(user: Any, *names: Role) -> bool:
    """Whether ``user`` holds any of the roles (superusers hold them all)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name__in=[role.value for role in names]).exists())
