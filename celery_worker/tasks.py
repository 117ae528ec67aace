"""Thin tasks: take primary keys, import a governance service inside the body, call it."""

from __future__ import annotations

from celery_worker.celery import app


# celery ships no type hints, so its decorators are untyped to mypy.
@app.task(name="lethe.ping")  # type: ignore[untyped-decorator]
def ping() -> str:
    """Round-trip check for a worker and broker."""
    return "pong"
