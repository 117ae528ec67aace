"""Reads: which API tokens an account may see and act on.

Every account sees and revokes its own tokens (``Action.TOKEN_MANAGE``); privacy officers
see and revoke anyone's (``Action.TOKEN_MANAGE_ALL``), so a leaked integration key can be
cut off without the integration's help. Another account's token is a 404 for everyone
else, as another account's erasure request is.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.models import ApiToken
from governance.permissions import Action, user_can


def api_tokens_visible(user: Any) -> QuerySet[ApiToken]:
    """The tokens ``user`` may list, expire and revoke, newest first."""
    tokens = ApiToken.objects.select_related("user").order_by("-created_at", "-pk")
    if user_can(user, Action.TOKEN_MANAGE_ALL):
        return tokens
    user_id = getattr(user, "pk", None)
    return tokens.filter(user_id=user_id) if user_id is not None else tokens.none()


def api_tokens_by_prefix(prefix: str) -> QuerySet[ApiToken]:
    """Tokens whose stored prefix (a key's first 8 characters) starts with ``prefix``."""
    return ApiToken.objects.select_related("user").filter(prefix__startswith=prefix[:8])
