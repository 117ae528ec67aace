"""Reads: the audit trail, filtered and paged by its chain sequence.

One filter (``audit_events_filter``) serves the API, which pages forward in chain order
(what clients replay: ``audit_event_list``), and the audit page, which shows the newest
first and pages both ways on the same index (``audit_event_window``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from governance.models import AuditEvent


def audit_events_filter(
    *,
    action: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every field given (``None`` matches all), created in [since, until)."""
    exact = {"action": action, "actor": actor, "object_type": object_type, "object_id": object_id}
    events = AuditEvent.objects.filter(**{k: v for k, v in exact.items() if v is not None})
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events


def audit_event_list(
    *,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: Any = None,
    until: Any = None,
) -> list[AuditEvent]:
    """Audit events after ``after_seq`` in chain order (keyset paging on the unique seq)."""
    events = audit_events_filter(
        action=action,
        actor=actor,
        object_type=object_type,
        object_id=object_id,
        since=since,
        until=until,
    )
    return list(events.filter(seq__gt=after_seq).order_by("seq")[:limit])


def audit_event_window(
    *,
    events: QuerySet[AuditEvent],
    before: int | None = None,
    after: int | None = None,
    limit: int,
) -> dict[str, Any]:
    """One page of ``events``, newest first: before ``before``, after ``after``, or the newest.

    ``older`` and ``newer`` are the cursors of the neighbouring pages (None at either end).
    """
    if after is not None:
        page = list(events.filter(seq__gt=after).order_by("seq")[:limit])[::-1]
    elif before is not None:
        page = list(events.filter(seq__lt=before).order_by("-seq")[:limit])
    else:
        page = list(events.order_by("-seq")[:limit])
    newest, oldest = (page[0].seq, page[-1].seq) if page else (None, None)
    return {
        "events": page,
        "older": oldest if oldest and events.filter(seq__lt=oldest).exists() else None,
        "newer": newest if newest and events.filter(seq__gt=newest).exists() else None,
    }
