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


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (SeaweedFS) for the session, or the one
    LETHE_TEST_S3_ENDPOINT_URL names (tests/s3.py)."""
    from tests.s3 import s3_server_running

    with s3_server_running() as server:
        yield server


@pytest.fixture
def s3_artifacts(request, settings, s3_server, tmp_path):
    """STORAGES["artifacts"] on a fresh prefix of the versioned test bucket (parametrize
    indirectly with "plain" for the unversioned one) and a per-test stage cache folder."""
    from tests.s3 import artifacts_on_s3

    versioned = getattr(request, "param", "versioned") == "versioned"
    with artifacts_on_s3(settings, s3_server, tmp_path, versioned=versioned) as place:
        yield place


@pytest.fixture(autouse=True)
def _fresh_predictor_cache():
    """Each test starts with no loaded ensembles (the cache is per process)."""
    yield
    from governance.services.serving import predictors

    predictors.clear()


@pytest.fixture(autouse=True, scope="session")
def _flush_past_the_audit_truncate_trigger():
    """PostgreSQL refuses TRUNCATE on the audit tables (migration 0006). pytest-django
    empties the database between transactional tests with one TRUNCATE of every table; that
    flush is the one caller let past the trigger, as a database superuser can be."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with self.connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        try:
            flush(self, sql_list)
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = flush
