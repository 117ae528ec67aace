"""Shared pytest setup. Django settings come from pyproject ([tool.pytest.ini_options]).

Tests run against whatever DATABASE_URL names (PostgreSQL in CI) or the embedded SQLite
default when it is unset; pytest-django creates and drops a separate test database.
"""

import pytest

from tests.personas import auditor, engineer, integration, officer, sample  # noqa: F401


def pytest_configure(config):
    """Settings create no folders: make the SQLite test database's (and the broker's and
    STATIC_ROOT) before pytest-django creates the database, as on a fresh clone."""
    from governance.apps import local_folders_create

    local_folders_create()


@pytest.fixture(autouse=True)
def _fresh_predictor_cache():
    """Each test starts with no loaded ensembles (the cache is per process)."""
    yield
    from governance.services.serving import predictors

    predictors.clear()
