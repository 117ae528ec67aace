"""Where the demo keeps its state between runs: the ``var/`` folder, the lock that allows
one demo at a time, and the credentials file that keeps passwords and the token stable."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from governance.services.demo import DemoError

if TYPE_CHECKING:
    from governance.demo.accounts import DemoAccount
    from governance.demo.console import Console


def var_dir() -> Path:
    return Path(settings.BASE_DIR) / "var"


def credentials_path(state_dir: Path) -> Path:
    return state_dir / "demo-credentials.txt"


def rel(path: Path) -> str:
    """``path`` relative to the project when it is inside it, as the demo prints paths."""
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def demo_lock(state_dir: Path) -> Iterator[None]:
    """One demo at a time per state folder: a second one would train and erase beside the
    first and then find the port taken. The lock dies with the process that holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "demo.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DemoError(
                f"another demo is running (pid {holder}, lock {path}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def credentials_read(console: Console, *, state_dir: Path) -> dict[str, str]:
    """The passwords and token an earlier run kept; an unreadable file means new ones."""
    path = credentials_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        console.write(f"  {rel(path)} is unreadable; making new credentials")
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def credentials_write(accounts: dict[str, DemoAccount], *, state_dir: Path) -> None:
    """Keep the accounts' secrets, readable by the owner only, replaced in one rename."""
    data: dict[str, str] = {}
    for account in accounts.values():
        if account.password:
            data[account.username] = account.password
        if account.token:
            data[f"{account.username}:token"] = account.token
    path = credentials_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    path.chmod(0o600)
