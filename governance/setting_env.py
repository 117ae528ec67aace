"""Reading the environment: the one module that does (tests/test_architecture.py).

``governance/settings.py`` turns every variable into a setting through these readers, and
the rest of the code reads settings. An empty variable counts as unset.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import overload

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _getenv(name: str) -> str | None:
    # An empty variable counts as unset: CI and compose files often write `NAME=`.
    value = os.environ.get(name, "").strip()
    return value or None


def envbool(name: str, default: bool) -> bool:
    raw = _getenv(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    choices = ", ".join(sorted(_TRUE | _FALSE))
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of: {choices}")


def envint(name: str, default: int) -> int:
    raw = _getenv(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def envfloat(name: str, default: float) -> float:
    raw = _getenv(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite number of at least 0")
    return value


@overload
def envstr(name: str, default: str) -> str: ...
@overload
def envstr(name: str, default: None) -> str | None: ...
def envstr(name: str, default: str | None) -> str | None:
    raw = _getenv(name)
    return default if raw is None else raw


def envsecret(name: str) -> str | None:
    """Read a secret from ``NAME``, or from the file named by ``NAME_FILE`` (Docker secrets)."""
    if (value := _getenv(name)) is not None:
        return value
    if (filename := _getenv(f"{name}_FILE")) is None:
        return None
    try:
        return Path(filename).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={filename!r} cannot be read: {exc}") from None


def envpath(name: str, default: Path) -> Path:
    """A path from the environment; relative paths are taken from the repository root."""
    raw = _getenv(name)
    return default if raw is None else BASE_DIR / Path(raw).expanduser()
