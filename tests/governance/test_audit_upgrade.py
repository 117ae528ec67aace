"""Upgrading a deployment with a trail: migration 0006 keys the events already written, and
the append-only trigger is still there afterwards (SQLite drops triggers when it rebuilds a
table to add a column)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from governance.audit_key import audit_mac
from governance.models import AuditEvent
from governance.services.audit_integrity import audit_chain_verify

BEFORE = [("governance", "0005_erasure_fingerprint_canonical")]


def _legacy_chain(model, n):
    """Events as the release before 0006 wrote them: SHA-256 chain, no MAC."""
    prev = "0" * 64
    for seq in range(1, n + 1):
        created = datetime(2026, 11, seq, 12, 0, tzinfo=UTC)
        body = {
            "seq": seq,
            "created_at": created.isoformat(timespec="microseconds"),
            "actor": "system",
            "action": "legacy.event",
            "object_type": "thing",
            "object_id": str(seq),
            "payload": {"n": seq},
            "prev_hash": prev,
        }
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(data.encode("utf-8")).hexdigest()
        model.objects.create(
            seq=seq,
            created_at=created,
            actor="system",
            action="legacy.event",
            object_type="thing",
            object_id=str(seq),
            payload={"n": seq},
            prev_hash=prev,
            hash=digest,
        )
        prev = digest


@pytest.mark.django_db(transaction=True)
def test_upgrade_keys_existing_events_and_keeps_the_trail_append_only():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("governance")
    executor.migrate(BEFORE)
    old = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    _legacy_chain(old.get_model("governance", "AuditEvent"), 3)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(latest)

    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.mac for e in events] == [audit_mac(e.hash) for e in events]
    report = audit_chain_verify()
    assert (report.ok, report.checked) == (True, 3), report.reason
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=1).update(actor="mallory")
