"""DATABASES entries from a URL: the two backends Lethe is tested on, PostgreSQL and SQLite.

Settings call these with the repository root and the connection age they read from the
environment; nothing here reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# psycopg's own default, which the benchmarks try: prepared on the fifth run on a connection.
PREPARE_THRESHOLD = 5


def database_from_url(
    url: str, *, base_dir: Path, conn_max_age: int, prepare: str = ""
) -> dict[str, Any]:
    """Turn ``postgres://user:password@host:port/name?option=value`` into a DATABASES entry.

    ``sqlite:///relative/path`` (from the repository root) and ``sqlite:////absolute/path``
    are accepted too. Query parameters (``sslmode=require``, ...) become OPTIONS.
    dj-database-url parses PostgreSQL URLs; this wrapper keeps to the two backends Lethe
    is tested on and says what is wrong with a URL it refuses.

    ``prepare`` (``DATABASE_PREPARE_THRESHOLD``; PostgreSQL): empty or ``off``, Django's
    default (parameters bound client-side, nothing prepared); a count, parameters bound on
    the server and a statement prepared once it has run that many times on one connection,
    so PostgreSQL may reuse a generic plan instead of planning it again. Off by default:
    a generic plan chosen while a table was small outlives the table's growth (measured on
    ingestion from an empty table: past 10k records one batch's id lookup ran over 8 s).
    """
    threshold = _prepare_threshold(prepare)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":  # SQLite has no server to prepare on: the value is unused
        options = dict(parse_qsl(parts.query))
        return sqlite_database(base_dir / unquote(parts.path[1:]), options)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported; use postgres:// or sqlite://"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("DATABASE_URL has an invalid port") from None
    try:
        database = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except ValueError as exc:  # dj_database_url.ParseError
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from None
    if not database["NAME"]:
        raise ImproperlyConfigured("DATABASE_URL names no database (postgres://user@host/NAME)")
    # psycopg 3 is picked up by the postgresql backend; settings keep the port a string.
    connect: dict[str, Any] = {**database.get("OPTIONS", {})}
    if threshold is not None:
        connect.update(server_side_binding=True, prepare_threshold=threshold)
    return {**database, "PORT": str(port or ""), "OPTIONS": connect}


def _prepare_threshold(raw: str) -> int | None:
    """``DATABASE_PREPARE_THRESHOLD``: "" or "off" none, else a count >= 0."""
    value = raw.strip().lower()
    if value in ("", "off"):
        return None
    if not value.isdigit():
        raise ImproperlyConfigured(
            f"DATABASE_PREPARE_THRESHOLD={raw!r} is neither 'off' nor a count of runs (0 or more)"
        )
    return int(value)


def sqlite_database(path: Path, options: dict[str, str]) -> dict[str, Any]:
    # The web process and the background worker share the file: WAL lets readers run
    # during a write, IMMEDIATE takes the write lock up front so a transaction never
    # fails half-way on an upgrade, and the timeout waits out the other process.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # A file, not memory: integration tests share the test database with a worker.
        "TEST": {"NAME": str(path.with_name(f"{path.stem}-test{path.suffix}"))},
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
            **options,
        },
    }
