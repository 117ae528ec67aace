"""Keyed audit events, signed checkpoints, and no TRUNCATE of the trail.

- ``AuditEvent.mac``: HMAC-SHA256 over each event's hash with the deployment's audit key
  (``governance.audit_key``). Events written before this migration are keyed here, from
  their stored hashes: the upgrade vouches for the trail as it stands (run
  ``verify_audit_chain`` first; it checks every hash).
- ``AuditCheckpoint``: signed statements of the trail's head.
- PostgreSQL: a statement trigger refuses TRUNCATE on both tables, and the row trigger of
  0002 (UPDATE and DELETE refused) now covers checkpoints too. SQLite has no TRUNCATE;
  its UPDATE trigger covers checkpoints.

The HMAC is written out here, not imported, so the migration keeps meaning what it meant
when it ran; only the key comes from the deployment (setting or key file).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.db import migrations, models

PG_UP = """
CREATE OR REPLACE FUNCTION lethe_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER lethe_audit_no_truncate BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION lethe_audit_no_truncate();
CREATE TRIGGER lethe_audit_no_truncate BEFORE TRUNCATE ON governance_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION lethe_audit_no_truncate();
CREATE TRIGGER lethe_audit_append_only BEFORE UPDATE OR DELETE ON governance_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION lethe_audit_append_only();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS lethe_audit_append_only ON governance_auditcheckpoint;
DROP TRIGGER IF EXISTS lethe_audit_no_truncate ON governance_auditcheckpoint;
DROP TRIGGER IF EXISTS lethe_audit_no_truncate ON governance_auditevent;
DROP FUNCTION IF EXISTS lethe_audit_no_truncate();
"""
# SQLite adds a column by rebuilding the table, which drops its triggers: 0002's UPDATE
# trigger is created again here (any later migration that alters the table must do the same).
SQLITE_UP = [
    "CREATE TRIGGER IF NOT EXISTS lethe_audit_append_only BEFORE UPDATE ON governance_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'governance_auditevent is append-only: UPDATE refused'); END",
    "CREATE TRIGGER lethe_checkpoint_append_only BEFORE UPDATE ON governance_auditcheckpoint "
    "BEGIN SELECT RAISE(ABORT, 'governance_auditcheckpoint is append-only: UPDATE refused'); END",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS lethe_checkpoint_append_only"]

# 0002's triggers refuse UPDATE; keying the existing events sets it aside for one statement
# per row, inside this migration's transaction.
_PAUSE = {
    "postgresql": (
        "ALTER TABLE governance_auditevent DISABLE TRIGGER lethe_audit_append_only",
        "ALTER TABLE governance_auditevent ENABLE TRIGGER lethe_audit_append_only",
    ),
    "sqlite": (
        "DROP TRIGGER IF EXISTS lethe_audit_append_only",
        "SELECT 1",  # SQLITE_UP below creates the trigger again
    ),
}


def _run(sql: dict[str, list[str]]) -> Any:
    def apply(apps: Any, schema_editor: Any) -> None:
        # One statement per call: SQLite's driver refuses several at once.
        for statement in sql.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)

    return apply


def _key_existing_events(apps: Any, schema_editor: Any) -> None:
    events = apps.get_model("governance", "AuditEvent")
    if not events.objects.exists():
        return
    from governance.audit_key import audit_key

    key = audit_key()
    pause, resume = _PAUSE[schema_editor.connection.vendor]
    schema_editor.execute(pause, params=None)
    for pk, digest in events.objects.values_list("pk", "hash").iterator():
        mac = hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()
        events.objects.filter(pk=pk).update(mac=mac)
    schema_editor.execute(resume, params=None)


class Migration(migrations.Migration):
    dependencies = [("governance", "0005_erasure_fingerprint_canonical")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(default="", max_length=64),
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.PositiveBigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("certificate", "Certificate"),
                            ("scheduled", "Scheduled"),
                            ("manual", "Manual"),
                        ],
                        max_length=20,
                    ),
                ),
                ("key_id", models.CharField(max_length=64)),
                ("signature", models.CharField(max_length=100)),
            ],
            options={
                "ordering": ["seq", "pk"],
                "indexes": [models.Index(fields=["seq"], name="audit_checkpoint_seq")],
            },
        ),
        migrations.RunPython(_key_existing_events, migrations.RunPython.noop),
        migrations.RunPython(
            _run({"postgresql": [PG_UP], "sqlite": SQLITE_UP}),
            _run({"postgresql": [PG_DOWN], "sqlite": SQLITE_DOWN}),
        ),
    ]
