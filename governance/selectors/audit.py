"""Reads: the audit trail, filtered and paged by its chain sequence."""

from __future__ import annotations

from typing import Any

from governance.models import AuditEvent


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
    events = AuditEvent.objects.filter(seq__gt=after_seq)
    exact = {"action": action, "actor": actor, "object_type": object_type, "object_id": object_id}
    events = events.filter(**{k: v for k, v in exact.items() if v is not None})
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return list(events.order_by("seq")[:limit])
