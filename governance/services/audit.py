"""The hash-chained audit trail: append only, one event per state change.

Each event's hash is SHA-256 over its canonical JSON form (``governance.canonical``), which
includes the previous event's hash, so changing or removing any row breaks every hash after
it; its MAC (``governance.audit_key``) is HMAC over that hash with the server's key, so an
event appended or re-hashed by anyone without the key is named too. Appends are
serialised (an advisory lock on PostgreSQL; SQLite's IMMEDIATE transactions already take
the write lock) so two writers never chain onto the same predecessor. Verification against
certificates and signed checkpoints lives in ``services.audit_integrity``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from governance.audit_key import audit_mac, audit_mac_matches
from governance.canonical import canonical_bytes
from governance.models import AuditEvent

GENESIS_HASH = "0" * 64
_LOCK_ID = 0x4C45544845  # "LETHE": the advisory lock that serialises chain appends
_HELD = "lethe_audit_chain_held"  # the connection attribute of ``audit_chain_held``


def canonical_event(
    *,
    seq: int,
    created_at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The bytes an event's hash covers: the canonical JSON of the event, UTC time in ISO 8601."""
    body = {
        "seq": seq,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return canonical_bytes(body)


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(
        canonical_event(
            seq=event.seq,
            created_at=event.created_at,
            actor=event.actor,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            payload=event.payload,
            prev_hash=event.prev_hash,
        )
    ).hexdigest()


def actor_name(actor: Any) -> str:
    """How an actor appears in the trail: a username, or a system component's name."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return f"user:{actor.get_username()}"


def audit_event_append(
    *,
    actor: Any,
    action: str,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str = "",
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain; must run inside the caller's transaction.

    ``payload`` is stored as JSON (values JSON lacks, such as datetimes, as their ``str``)
    and hashed in canonical form, so it holds no floats (ValueError names the path).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events are written inside the state change's transaction")
    last = audit_head(lock=True)
    event = AuditEvent(
        seq=(last.seq + 1) if last else 1,
        created_at=timezone.now(),
        actor=actor_name(actor),
        action=action,
        object_type=obj._meta.model_name if obj is not None else object_type,  # type: ignore[misc]
        object_id=str(obj.pk) if obj is not None else object_id,
        payload=json.loads(json.dumps(payload or {}, default=str)),
        prev_hash=last.hash if last else GENESIS_HASH,
    )
    event.hash = event_hash(event)
    event.mac = audit_mac(event.hash)
    event.save(force_insert=True)
    _remember(Head(event.seq, event.hash))
    return event


# --- the chain's head ---------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """The newest event of the chain: what the next one links to."""

    seq: int
    hash: str


@dataclass
class _Held:
    """``audit_chain_held``'s memory: the head, and the savepoints open when it was known."""

    head: Head | None = None
    savepoints: tuple[str, ...] = ()
    known: bool = False


def audit_head(*, lock: bool = False) -> Head | None:
    """The chain's head (None for an empty trail).

    ``lock=True`` takes the chain's lock first (an advisory lock on PostgreSQL, held to the
    end of the transaction; SQLite's write lock already serialises): the head read then
    stays the head until this transaction commits, so an event appended next links to it.
    Inside ``audit_chain_held`` the lock is taken once and the head kept in memory.
    """
    held = _held()
    if held is not None and held.known:
        return held.head
    if lock and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
    row = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    head = Head(*row) if row else None
    if lock:
        _remember(head)
    return head


def audit_head_seq() -> int:
    """The chain head's sequence number (0 for an empty trail): one index lookup."""
    head = audit_head()
    return head.seq if head else 0


@contextmanager
def audit_chain_held() -> Iterator[None]:
    """Within the caller's transaction, take the chain's lock once (at the first append or
    locked head read) and keep the head in memory: each further append is one INSERT.

    What is kept is forgotten once a savepoint it was learnt in is closed (rolled back, an
    event appended there is gone; or released, which cannot be told apart), and at the end
    of the block; ``atomic(savepoint=False)`` blocks open no savepoint and keep it. Nothing
    else writes the trail meanwhile: only ``audit_event_append`` does, and the lock keeps
    other transactions out until this one commits.
    """
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        raise RuntimeError("audit_chain_held runs inside the state change's transaction")
    if getattr(conn, _HELD, None) is not None:
        yield  # nested: the outer block keeps the head
        return
    setattr(conn, _HELD, _Held())
    try:
        yield
    finally:
        setattr(conn, _HELD, None)


def _held() -> _Held | None:
    """The block's memory if what it knows is still true in this transaction."""
    held: _Held | None = getattr(connection, _HELD, None)
    if held is None or not held.known:
        return held
    open_now = _savepoints()
    if not connection.in_atomic_block or open_now[: len(held.savepoints)] != held.savepoints:
        held.known = False  # learnt in a savepoint since closed
    return held


def _savepoints() -> tuple[str, ...]:
    """The savepoints open now (a savepoint=False block opens none: None in Django's list)."""
    return tuple(sid for sid in connection.savepoint_ids if sid is not None)


def _remember(head: Head | None) -> None:
    held = _held()
    if held is not None:
        held.head, held.savepoints, held.known = head, _savepoints(), True


def event_problem(event: AuditEvent, expected_seq: int, prev: str) -> str:
    """What is wrong with ``event`` as the successor of ``prev`` at ``expected_seq``; "" if ok.

    Catches an edited row (its hash no longer matches its content), a deleted row (a gap
    in ``seq`` or a broken ``prev_hash`` link), and an event appended or re-hashed by anyone
    without the audit key (its MAC does not match).
    """
    if event.seq != expected_seq:
        return f"sequence gap: expected #{expected_seq}, found #{event.seq}"
    if event.prev_hash != prev:
        return "prev_hash does not match the previous event's hash"
    if event_hash(event) != event.hash:
        return "hash does not match the event's content"
    if not audit_mac_matches(event.hash, event.mac):
        return "MAC does not match: not written with this server's audit key (forged or re-hashed)"
    return ""
