"""Who is calling: ``Authorization: Token <key>``, looked up by the key's hash.

Keys are created by ``services.accounts.api_token_issue`` and stored only as
``token_hash(key)``; an expired or revoked token is refused with 401 and says which.
Sessions (the web UI) are DRF's own ``SessionAuthentication``.

The token, its user and the user's group names are read in one plain statement (a row per
group), and the names seed ``permissions.user_roles``' cache: the permission check and the
dataset scope then ask nothing more. Built through the ORM, the token and roles queries
cost a request three times what the database spent on them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.models import ManyToManyField, Model, Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from governance.models import ApiToken
from governance.permissions import user_roles_seed
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
        found = _token_with_user(token_hash(key))
        if found is None:
            raise AuthenticationFailed("Invalid token.")
        token, group_names = found
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
        user_roles_seed(token.user, group_names)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A WWW-Authenticate value is what makes DRF answer 401 rather than 403.
        return KEYWORD


Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class _Lookup:
    sql: str
    token_fields: list[str]  # attnames, in column order
    user_fields: list[str]
    converters: list[tuple[int, Any, list[Converter]]]  # column, its expression, converters


@functools.cache
def _lookup() -> _Lookup:
    """The one statement: the token by its hash, its user, and a row per group of the user."""
    qn = connection.ops.quote_name
    tokens, users, groups = ApiToken._meta, User._meta, Group._meta
    link = cast("ManyToManyField[Any, Any]", users.get_field("groups"))
    token_fields, user_fields = tokens.concrete_fields, users.concrete_fields
    columns = [f"t.{qn(f.column)}" for f in token_fields]
    columns += [f"u.{qn(f.column)}" for f in user_fields]
    user_pk, group_pk = qn(users.pk.column), qn(groups.pk.column)
    # Identifiers from the models' metadata, quoted; the key's hash is the one parameter.
    sql = (
        f"SELECT {', '.join(columns)}, g.{qn(groups.get_field('name').column)} "  # noqa: S608
        f"FROM {qn(tokens.db_table)} t JOIN {qn(users.db_table)} u "
        f"ON u.{user_pk} = t.{qn(tokens.get_field('user').column)} "
        f"LEFT JOIN {qn(link.m2m_db_table())} ug ON ug.{qn(link.m2m_column_name())} = u.{user_pk} "
        f"LEFT JOIN {qn(groups.db_table)} g ON g.{group_pk} = ug.{qn(link.m2m_reverse_name())} "
        f"WHERE t.{qn(tokens.get_field('key_hash').column)} = %s"
    )
    # What the ORM would apply to each column (SQLite's times and booleans; none on PostgreSQL).
    converters = []
    for n, (alias, field) in enumerate(
        [("t", f) for f in token_fields] + [("u", f) for f in user_fields]
    ):
        column = field.get_col(alias)
        functions = connection.ops.get_db_converters(column)
        functions += field.get_db_converters(connection)  # type: ignore[attr-defined]  # no stub
        if functions:
            converters.append((n, column, functions))
    return _Lookup(
        sql, [f.attname for f in token_fields], [f.attname for f in user_fields], converters
    )


def _token_with_user(key_hash: str) -> tuple[ApiToken, list[str]] | None:
    """The token with ``key_hash``, its user loaded (as ``select_related``), and the
    user's group names; None for no such token."""
    lookup = _lookup()
    with connection.cursor() as cursor:
        cursor.execute(lookup.sql, [key_hash])
        rows = cursor.fetchall()
    if not rows:
        return None
    values = list(rows[0][:-1])
    for n, expression, functions in lookup.converters:
        for function in functions:
            values[n] = function(values[n], expression, connection)
    split = len(lookup.token_fields)
    token = _instance(ApiToken, lookup.token_fields, values[:split])
    token.user = _instance(User, lookup.user_fields, values[split:])
    return token, [row[-1] for row in rows if row[-1] is not None]


_M = TypeVar("_M", bound=Model)


def _instance(model: type[_M], fields: list[str], values: list[Any]) -> _M:
    return model.from_db(connection.alias, fields, values)


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
