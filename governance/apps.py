"""The governance app, and the local folders its embedded default needs.

Settings only name paths; nothing is created when they are imported. The folders that the
code writing there does not create itself (SQLite opens its file but not the folder, the
file-system broker writes messages but makes no folders, WhiteNoise only scans
STATIC_ROOT) are created by whoever starts things: ``serve``, ``worker``, the demo, a
Celery worker or a task sent (celery_worker/celery.py) and the test setup.
"""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Lethe governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Refuse to start a process whose keys would not be the deployment's.

        Every process (web, worker, beat, any ``manage.py`` command) runs this at
        ``django.setup()``: a configured key must be usable, and a shared deployment with
        DEBUG off must configure every key (docs/operations.md, Keys). It reads settings
        and parses configured keys only: no model, no database, no key file created, since
        Celery workers fork after Django starts, and a model loaded in the parent process
        hangs forked children once torch has started its threads (DESIGN §8).
        """
        from governance.audit_key import audit_key_check
        from governance.certificates.signing import signing_key_check
        from governance.secret_key import secret_key_check

        signing_key_check()
        audit_key_check()
        secret_key_check()


def local_folders_create() -> None:
    """Create the folders of the SQLite database, the file-system broker and STATIC_ROOT.

    Only what the configuration uses: nothing for PostgreSQL or a Redis broker. Safe to
    call again; ``demo --reset`` may have deleted them in the meantime.
    """
    for folder in (*_sqlite_folders(), Path(settings.STATIC_ROOT)):
        folder.mkdir(parents=True, exist_ok=True)
    broker_folders_create()


def broker_folders_create() -> None:
    """The file-system transport's queue, processed and control folders, when it is used."""
    if not str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        return
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        Path(str(options[key])).mkdir(parents=True, exist_ok=True)


def _sqlite_folders() -> list[Path]:
    """The folders of every SQLite database file, the test database's included."""
    folders = []
    for database in settings.DATABASES.values():
        if database["ENGINE"] != "django.db.backends.sqlite3":
            continue
        for name in (database["NAME"], database.get("TEST", {}).get("NAME")):
            if name and str(name) != ":memory:":
                folders.append(Path(name).parent)
    return folders
