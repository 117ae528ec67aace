"""The demo's own writes (``manage.py demo``): starting over, and its accounts' passwords.

Everything else the demo changes goes through the product's services (datasets, training,
erasure), exactly as the API and the web UI do; only these two have no other caller.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import connections, transaction

from governance.apps import local_folders_create
from governance.certificates.signing import signing_key_cache_clear
from governance.services.audit import audit_event_append
from governance.services.serving import predictors


class DemoError(Exception):
    """A condition the person running the demo has to fix; the message says how."""


def reset_targets(*, database: dict[str, Any], paths: dict[str, Path], var: Path) -> list[Path]:
    """What ``--reset`` deletes: the SQLite files and the named paths, all under ``var``.

    Refuses (DemoError) rather than delete anything else: a database that is not SQLite
    (PostgreSQL is never dropped, and its audit chain is append-only), a SQLite file
    outside ``var``, or any named path outside it. Nothing is deleted here.
    """
    var = var.resolve()
    if "sqlite3" not in str(database.get("ENGINE", "")):
        raise DemoError(
            "--reset deletes only the embedded SQLite database under var/, and DATABASE_URL "
            f"points at {database.get('ENGINE', '?').rsplit('.', 1)[-1]} "
            f"({database.get('NAME', '')}). Lethe never drops data there (the audit trail is "
            "append-only): use a fresh database, or run without --reset to reuse the demo data."
        )
    name = Path(str(database.get("NAME", "")))
    targets = [name, *(name.with_name(name.name + s) for s in ("-wal", "-shm", "-journal"))]
    checked: list[tuple[str, Path]] = [("the SQLite database", p) for p in targets]
    checked += list(paths.items())
    for label, path in checked:
        resolved = path.resolve()
        if resolved == var or not resolved.is_relative_to(var):
            raise DemoError(
                f"--reset deletes only under {var}, and {label} is {path}. Delete it yourself, "
                "or unset the variable that moved it, then run again."
            )
    return [p for _, p in checked]


def demo_state_reset(*, database: dict[str, Any], paths: dict[str, Path], var: Path) -> list[Path]:
    """Delete what ``reset_targets`` allows and return what existed; caches start over too.

    The connections close first (SQLite's file goes away under them), and the signing key
    and the loaded predictors are forgotten, since the files they came from are gone.
    """
    targets = reset_targets(database=database, paths=paths, var=var)
    connections.close_all()
    deleted = [path for path in targets if _delete(path)]
    signing_key_cache_clear()
    predictors.clear()
    local_folders_create()  # the reset deleted them; the next steps write there
    return deleted


def _delete(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


@transaction.atomic
def demo_password_set(*, actor: Any, user: User, password: str) -> None:
    """Give a demo account the password the demo prints (kept from run to run), audited."""
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_event_append(
        actor=actor, action="user.password_set", obj=user, payload={"username": user.username}
    )
