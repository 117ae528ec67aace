"""Step 1, the database: ``--reset`` if asked, migrate, and say whether demo data exists."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from governance.demo.console import Console
from governance.demo.data import DATASET_NAME
from governance.demo.state import credentials_path, rel, var_dir
from governance.selectors.demo import dataset_named
from governance.services.demo import demo_state_reset


def database_prepare(console: Console, *, reset: bool, state_dir: Path) -> None:
    if reset:
        _reset(console, state_dir=state_dir)
    call_command("migrate", interactive=False, verbosity=0)
    fresh = dataset_named(DATASET_NAME) is None
    console.fields(
        [
            ("database", f"{_describe_database()}: migrated"),
            (
                "demo data",
                "none yet: creating it"
                if fresh
                else "found: reusing it (run with --reset to start over)",
            ),
            ("artifacts", rel(Path(settings.ARTIFACT_ROOT))),
        ]
    )


def _describe_database() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite {rel(Path(str(db['NAME'])))}"
    return f"{connection.vendor} database {db.get('NAME')} on {db.get('HOST') or 'localhost'}"


def _reset(console: Console, *, state_dir: Path) -> None:
    deleted = demo_state_reset(
        database=dict(connection.settings_dict),
        paths={
            "ARTIFACT_ROOT": Path(settings.ARTIFACT_ROOT),
            "LETHE_BROKER_DIR": Path(settings.LETHE_BROKER_DIR),
            "LETHE_SIGNING_KEY_PATH": Path(settings.LETHE_SIGNING_KEY_PATH),
            "the demo credentials": credentials_path(state_dir),
        },
        var=var_dir(),
    )
    shown = ", ".join(rel(p) for p in deleted) if deleted else "nothing (no state)"
    console.fields([("--reset", "deleted " + shown)])
