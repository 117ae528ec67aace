"""Fixtures shared by the real-worker tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def shared_dirs(tmp_path, settings):
    """Artifacts in a fresh folder; the broker's queue emptied of earlier runs' messages.

    The broker itself is not swapped per test: the test process's producer pool keeps
    the connection it opened first.
    """
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    from celery_worker.celery import app

    if str(settings.CELERY_BROKER_URL).startswith("filesystem"):
        for message in (Path(settings.LETHE_BROKER_DIR) / "queue").glob("*"):
            message.unlink()
    else:
        app.control.purge()  # messages left by earlier runs point at rows that are gone
    return tmp_path
