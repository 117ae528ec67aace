"""Who is calling: ``Authorization: Token <key>``, looked up by the key's hash.

Keys are created by ``services.accounts.api_token_issue`` and stored only as
``token_hash(key)``; an expired or revoked token is refused with 401 and says which.
Sessions (the web UI) are DRF's own ``SessionAuthentication``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from governance.models import ApiToken
from governance.services.accounts import token_hash

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema

KEYWORD = "Token"
# Writing last_used_at on every request would turn every read into a write; a minute's
# precision is enough to tell a live token from an abandoned one.
LAST_USED_PRECISION = timedelta(minutes=1)


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
        # Distinct messages: the key was right, so telling its holder why it stopped working
        # (and that a new one is needed) reveals nothing they do not already hold.
        state = token.state(timezone.now())
        if state is ApiToken.State.REVOKED:
            raise AuthenticationFailed("Token revoked: create a new one.")
        if state is ApiToken.State.EXPIRED:
            raise AuthenticationFailed("Token expired: create a new one.")
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
