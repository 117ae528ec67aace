"""Make the audit table append-only in the database itself.

PostgreSQL: a trigger refuses UPDATE and DELETE on every row (TRUNCATE, used only by test
database flushes and operators, is a separate statement-level privilege). SQLite: UPDATE is
refused; DELETE stays possible because Django's test flush deletes rows on SQLite.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

PG_UP = """
CREATE OR REPLACE FUNCTION lethe_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'governance_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER lethe_audit_append_only BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION lethe_audit_append_only();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS lethe_audit_append_only ON governance_auditevent;
DROP FUNCTION IF EXISTS lethe_audit_append_only();
"""
SQLITE_UP = """
CREATE TRIGGER lethe_audit_append_only BEFORE UPDATE ON governance_auditevent
BEGIN SELECT RAISE(ABORT, 'governance_auditevent is append-only: UPDATE refused'); END;
"""
SQLITE_DOWN = "DROP TRIGGER IF EXISTS lethe_audit_append_only;"


def _run(sql: dict[str, str]) -> Any:
    def apply(apps: Any, schema_editor: Any) -> None:
        statement = sql.get(schema_editor.connection.vendor)
        if statement:
            # params=None: no placeholder processing, so the "%" of RAISE stays as written.
            schema_editor.execute(statement, params=None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": PG_DOWN, "sqlite": SQLITE_DOWN}),
        )
    ]
