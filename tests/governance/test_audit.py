"""The audit trail: hash chain verification, tamper detection, append-only in the database."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from governance.models import AuditEvent
from governance.services.audit import audit_event_append
from governance.services.audit_integrity import audit_chain_verify


def _append(n):
    for i in range(n):
        with transaction.atomic():
            audit_event_append(
                actor="test",
                action="thing.happened",
                object_type="thing",
                object_id=str(i),
                payload={"i": i, "note": "ünïcode ✓"},
            )


# The append-only triggers on SQLite (migrations 0002 and 0006); PostgreSQL's are skipped
# with session_replication_role instead.
_SQLITE_TRIGGERS = {
    "lethe_audit_append_only": "governance_auditevent",
    "lethe_checkpoint_append_only": "governance_auditcheckpoint",
}


def _tamper(sql, params):
    """Change a row behind the application's back, past the append-only trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")  # skips triggers
            cursor.execute(sql, params)
            cursor.execute("SET session_replication_role = DEFAULT")
        else:
            for trigger in _SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER {trigger}")
            cursor.execute(sql, params)
            for trigger, table in _SQLITE_TRIGGERS.items():
                cursor.execute(
                    f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'append-only'); END;"
                )


@pytest.mark.django_db
def test_an_intact_chain_verifies():
    _append(5)
    report = audit_chain_verify(batch=2)  # crosses batch boundaries
    assert (report.ok, report.checked) == (True, 5)
    assert report.head == AuditEvent.objects.order_by("-seq").first().hash


@pytest.mark.django_db
def test_an_edited_payload_is_detected_at_its_event():
    _append(5)
    _tamper("UPDATE governance_auditevent SET payload = %s WHERE seq = 3", ['{"i": 99}'])
    report = audit_chain_verify()
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 3, 2)
    assert "hash" in report.reason


@pytest.mark.django_db
def test_a_deleted_event_is_detected():
    _append(5)
    _tamper("DELETE FROM governance_auditevent WHERE seq = 2", [])
    report = audit_chain_verify()
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "gap" in report.reason


@pytest.mark.django_db
def test_a_rehashed_forgery_breaks_the_link():
    _append(4)
    event = AuditEvent.objects.get(seq=2)
    from governance.services.audit import event_hash

    event.actor = "mallory"
    forged = event_hash(event)  # a consistent hash for the forged row...
    _tamper(
        "UPDATE governance_auditevent SET actor = %s, hash = %s WHERE seq = 2", ["mallory", forged]
    )
    report = audit_chain_verify()
    # ...but without the audit key its MAC cannot match (and #3 still links to the old hash).
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "MAC" in report.reason


@pytest.mark.django_db
def test_the_database_refuses_updates():
    _append(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=1).update(actor="mallory")
    assert AuditEvent.objects.get(seq=1).actor == "test"


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite keeps DELETE for flushes")
def test_postgres_refuses_deletes():
    _append(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=1).delete()
    assert AuditEvent.objects.filter(seq=1).exists()


@pytest.mark.django_db(transaction=True)
def test_events_are_only_written_inside_a_transaction():
    with pytest.raises(RuntimeError, match="transaction"):
        audit_event_append(actor="test", action="x", object_type="t", object_id="1")


@pytest.mark.django_db
def test_verify_command_names_the_first_bad_event():
    _append(3)
    call_command("verify_audit_chain")
    _tamper("UPDATE governance_auditevent SET action = %s WHERE seq = 2", ["thing.forged"])
    with pytest.raises(CommandError, match="#2"):
        call_command("verify_audit_chain")
