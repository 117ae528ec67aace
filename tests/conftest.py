"""Shared pytest setup. Django settings come from pyproject ([tool.pytest.ini_options]).

Tests run against whatever DATABASE_URL names (PostgreSQL in CI) or the embedded SQLite
default when it is unset; pytest-django creates and drops a separate test database.
"""

import pytest

from tests.personas import auditor, engineer, integration, officer, sample  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_predictor_cache():
    """Each test starts with no loaded ensembles (the cache is per process)."""
    yield
    from governance.services.serving import predictors

    predictors.clear()
