"""``manage.py lethe_token``: list, create, expire and revoke API tokens, each audited.

Tokens are named by the first characters of their key (the ``prefix`` that listings
show), never by the key itself; a prefix that names more than one token is refused with
the candidates listed. ``create`` prints the new key as the last line on stdout, alone.
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from governance.errors import ApplicationError
from governance.models import ApiToken
from governance.selectors.tokens import api_tokens_by_prefix
from governance.services.accounts import api_token_expire, api_token_issue, api_token_revoke

ACTOR = "manage.py lethe_token"
MIN_PREFIX = 4


class Command(BaseCommand):
    help = "List, create, expire and revoke API tokens (named by their key's prefix)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        listing = sub.add_parser("list", help="tokens, newest first, with their state")
        listing.add_argument("--user", help="only this user's tokens")
        create = sub.add_parser("create", help="a new token for a user; prints the key")
        create.add_argument("username")
        create.add_argument("--name", default="")
        create.add_argument("--expires-at", help="ISO 8601 time; none: never expires")
        expire = sub.add_parser("expire", help="bring a token's expiry forward (default: now)")
        expire.add_argument("prefix")
        expire.add_argument("--at", help="ISO 8601 time; default: now")
        revoke = sub.add_parser("revoke", help="revoke a token at once")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['command']}")(options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _list(self, options: dict[str, Any]) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("-created_at", "-pk")
        if options["user"]:
            tokens = tokens.filter(user=_user(options["user"]))
        now = timezone.now()
        self.stdout.write("prefix    user                 state    expires_at           name")
        for t in tokens:
            expires = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "-"
            self.stdout.write(
                f"{t.prefix:<9} {t.user.username:<20} {t.state(now):<8} {expires:<20} {t.name}"
            )

    def _create(self, options: dict[str, Any]) -> None:
        expires_at = _when(options["expires_at"], "--expires-at")
        token, key = api_token_issue(
            user=_user(options["username"]),
            actor=ACTOR,
            name=options["name"],
            expires_at=expires_at,
        )
        self.stderr.write(
            f"Created token {token.prefix}… for {token.user.username!r}; the key below is shown "
            "only once.",
            style_func=self.style.SUCCESS,
        )
        self.stdout.write(key)

    def _expire(self, options: dict[str, Any]) -> None:
        token = api_token_expire(
            actor=ACTOR, token=_one(options["prefix"]), expires_at=_when(options["at"], "--at")
        )
        assert token.expires_at is not None  # set by the service
        self.stdout.write(f"Token {token.prefix}… expires at {token.expires_at.isoformat()}.")

    def _revoke(self, options: dict[str, Any]) -> None:
        token = api_token_revoke(actor=ACTOR, token=_one(options["prefix"]))
        self.stdout.write(f"Token {token.prefix}… of {token.user.username!r} revoked.")


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user


def _one(prefix: str) -> ApiToken:
    """The one token ``prefix`` names; too short, unknown or ambiguous is an error."""
    if len(prefix) < MIN_PREFIX:
        raise CommandError(f"prefix: give at least {MIN_PREFIX} characters of the key.")
    found = list(api_tokens_by_prefix(prefix))
    if not found:
        raise CommandError(f"prefix: no token starts with {prefix!r}.")
    if len(found) > 1:
        names = ", ".join(f"{t.prefix} ({t.user.username})" for t in found)
        raise CommandError(f"prefix: {prefix!r} names {len(found)} tokens: {names}; give more.")
    return found[0]


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    at = parse_datetime(value)
    if at is None:
        raise CommandError(f"{option}: not an ISO 8601 time: {value!r}")
    return at if timezone.is_aware(at) else timezone.make_aware(at, UTC)
