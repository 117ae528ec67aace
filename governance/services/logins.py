"""Writes: failed web sign-ins and lockouts, in the audit trail.

django-axes counts failures and refuses a locked-out username and address; these services
put each failure and each lockout in the hash-chained trail, so an auditor sees a password
guessing attempt where every other security-relevant event is. They are connected to
Django's ``user_login_failed`` and axes' ``user_locked_out`` signals in
``governance.web_security``.

The trail is append-only and never shortened, so it must not keep what a person typed by
mistake: a name that is no account (often a password typed into the username field) is
recorded as unknown, not verbatim.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from governance.services.audit import audit_event_append

LOGIN_FAILED = "login.failed"
LOGIN_LOCKED_OUT = "login.locked_out"
ANONYMOUS = "anonymous"
UNKNOWN = "unknown"


def login_failure_record(*, username: str | None, ip_address: str | None, locked: bool) -> None:
    """One failed sign-in; ``locked`` when it came while the pair was locked out."""
    _append(LOGIN_FAILED, username, {"ip_address": ip_address, "locked_out": locked})


def login_lockout_record(*, username: str | None, ip_address: str | None) -> None:
    """The failure that reached the limit: this username and address are now refused."""
    _append(LOGIN_LOCKED_OUT, username, {"ip_address": ip_address})


def _append(action: str, username: str | None, payload: dict[str, object]) -> None:
    with transaction.atomic():
        audit_event_append(
            actor=ANONYMOUS,
            action=action,
            object_type="user",
            object_id=_account_id(username),
            payload=payload,
        )


def _account_id(username: str | None) -> str:
    """The primary key of the account the sign-in named, or ``unknown`` for no account."""
    if not username:
        return UNKNOWN
    pk = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
    return UNKNOWN if pk is None else str(pk)
