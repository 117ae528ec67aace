"""The project skeleton: settings parsing, system checks, schema, health and the demo command."""

from __future__ import annotations

import io
import runpy
import sys
import types
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from governance import settings as lethe_settings
from governance.settings import envbool, envint, envsecret, envstr, parse_database_url

SETTINGS_FILE = Path(lethe_settings.__file__)
SETTINGS_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "CELERY_BROKER_URL",
    "CELERY_BROKER_URL_FILE",
    "ARTIFACT_ROOT",
)


# --- manage.py check and the API skeleton ---------------------------------------------


def test_system_checks_pass():
    call_command("check", fail_level="WARNING", stdout=io.StringIO())


def test_schema_endpoint_serves_openapi_document(client):
    response = client.get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Lethe API"
    assert "/api/v1/health/" in document["paths"]


def test_schema_is_valid_and_generates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=io.StringIO())


# Health (database, broker, workers) is tested in tests/governance/test_health.py.


# --- DATABASE_URL -----------------------------------------------------------------------


def test_parse_database_url_postgres(monkeypatch):
    monkeypatch.delenv("DATABASE_PREPARE_THRESHOLD", raising=False)
    db = parse_database_url("postgres://lethe:p%40ss%2Fword@db.example.com:6543/lethe_prod")

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert db["NAME"] == "lethe_prod"
    assert db["USER"] == "lethe"
    assert db["PASSWORD"] == "p@ss/word"
    assert db["HOST"] == "db.example.com"
    assert db["PORT"] == "6543"
    assert db["OPTIONS"] == {}


def test_parse_database_url_ci_form_without_password():
    db = parse_database_url("postgres://postgres@127.0.0.1:5432/test")

    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "postgres",
        "",
        "127.0.0.1",
        "5432",
        "test",
    )


def test_parse_database_url_postgresql_scheme_defaults_and_options():
    db = parse_database_url("postgresql://localhost/lethe?sslmode=require")

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["USER"]) == ("localhost", "", "")
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_parse_database_url_sqlite_paths():
    relative = parse_database_url("sqlite:///var/other.sqlite3")
    absolute = parse_database_url("sqlite:////tmp/lethe.sqlite3")

    assert relative["ENGINE"] == "django.db.backends.sqlite3"
    assert relative["NAME"] == lethe_settings.BASE_DIR / "var" / "other.sqlite3"
    assert absolute["NAME"] == Path("/tmp/lethe.sqlite3")


def test_prepared_statements_are_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("DATABASE_PREPARE_THRESHOLD", raising=False)
    assert parse_database_url("postgres://h/lethe?sslmode=require")["OPTIONS"] == {
        "sslmode": "require"
    }
    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", "OFF")
    assert parse_database_url("postgres://h/lethe")["OPTIONS"] == {}

    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", "5")
    assert parse_database_url("postgres://h/lethe?sslmode=require")["OPTIONS"] == {
        "sslmode": "require",
        "server_side_binding": True,
        "prepare_threshold": 5,
    }
    assert "prepare_threshold" not in parse_database_url("sqlite:///var/x.sqlite3")["OPTIONS"]


@pytest.mark.parametrize(
    ("url", "value", "message"),
    [
        ("postgres://h/lethe", "-1", "neither 'off' nor a count"),
        ("postgres://h/lethe", "often", "neither 'off' nor a count"),
        ("sqlite:///var/x.sqlite3", "often", "neither 'off' nor a count"),
    ],
)
def test_prepare_threshold_refuses_bad_values(monkeypatch, url, value, message):
    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_database_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/lethe", "scheme 'mysql' is not supported"),
        ("postgres://postgres@localhost", "names no database"),
        ("postgres://postgres@localhost:notaport/lethe", "invalid port"),
    ],
)
def test_parse_database_url_rejects_bad_urls(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_database_url(url)


# --- typed environment helpers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("True", True), ("1", True), ("yes", True), ("off", False), ("0", False)],
)
def test_envbool_parses_common_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("LETHE_FLAG", raw)

    assert envbool("LETHE_FLAG", default=not expected) is expected


def test_envbool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("LETHE_FLAG", "maybe")

    with pytest.raises(ImproperlyConfigured, match=r"LETHE_FLAG='maybe' is not a boolean"):
        envbool("LETHE_FLAG", default=False)


def test_envint_parses_and_rejects_garbage(monkeypatch):
    monkeypatch.setenv("LETHE_COUNT", " 42 ")
    assert envint("LETHE_COUNT", default=1) == 42

    monkeypatch.setenv("LETHE_COUNT", "4.5")
    with pytest.raises(ImproperlyConfigured, match=r"LETHE_COUNT='4.5' is not an integer"):
        envint("LETHE_COUNT", default=1)


def test_envfloat_parses_and_rejects_garbage_negative_and_infinite(monkeypatch):
    from governance.setting_env import envfloat

    monkeypatch.setenv("LETHE_SECONDS", " 0.25 ")
    assert envfloat("LETHE_SECONDS", default=1.0) == 0.25

    for raw, words in (("soon", "is not a number"), ("-1", "at least 0"), ("inf", "finite")):
        monkeypatch.setenv("LETHE_SECONDS", raw)
        with pytest.raises(ImproperlyConfigured, match=words):
            envfloat("LETHE_SECONDS", default=1.0)


def test_the_embedded_broker_is_polled_as_configured(monkeypatch):
    """An approved erasure waits up to one polling interval on the file-system broker."""
    assert load_settings(monkeypatch).CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] == 0.05
    tuned = load_settings(monkeypatch, LETHE_BROKER_POLL_SECONDS="0.2")
    assert tuned.CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] == 0.2
    redis = load_settings(monkeypatch, CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert "polling_interval" not in redis.CELERY_BROKER_TRANSPORT_OPTIONS  # Redis pushes


def test_empty_variables_fall_back_to_defaults(monkeypatch):
    for name in ("LETHE_FLAG", "LETHE_COUNT", "LETHE_TEXT"):
        monkeypatch.setenv(name, "")

    assert envbool("LETHE_FLAG", default=True) is True
    assert envint("LETHE_COUNT", default=7) == 7
    assert envstr("LETHE_TEXT", "fallback") == "fallback"


def test_envsecret_prefers_variable_then_reads_file(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    monkeypatch.delenv("LETHE_SECRET", raising=False)
    monkeypatch.setenv("LETHE_SECRET_FILE", str(secret_file))
    assert envsecret("LETHE_SECRET") == "from-file"

    monkeypatch.setenv("LETHE_SECRET", "from-env")
    assert envsecret("LETHE_SECRET") == "from-env"


def test_envsecret_reports_unreadable_file(monkeypatch, tmp_path):
    monkeypatch.delenv("LETHE_SECRET", raising=False)
    monkeypatch.setenv("LETHE_SECRET_FILE", str(tmp_path / "missing"))

    with pytest.raises(ImproperlyConfigured, match=r"LETHE_SECRET_FILE=.* cannot be read"):
        envsecret("LETHE_SECRET")


# --- the settings module under different environments ---------------------------------


def load_settings(monkeypatch, **env):
    """Execute governance/settings.py afresh under `env` and return its namespace."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return types.SimpleNamespace(**runpy.run_path(str(SETTINGS_FILE)))


def test_no_environment_means_embedded_sqlite(monkeypatch):
    s = load_settings(monkeypatch)

    assert s.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s.DATABASES["default"]["NAME"] == s.BASE_DIR / "var" / "lethe.sqlite3"
    assert s.ARTIFACT_ROOT == s.BASE_DIR / "var" / "artifacts"
    assert s.CELERY_BROKER_URL == "filesystem://"  # embedded, broker-less queue
    assert s.DEBUG is False  # manage.py demo/serve/runserver turn it on, nothing else


def test_database_url_selects_postgres(monkeypatch):
    s = load_settings(monkeypatch, DATABASE_URL="postgres://postgres@127.0.0.1:5432/test")

    assert s.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert s.DATABASES["default"]["NAME"] == "test"


def test_celery_is_json_only_and_takes_broker_from_environment(monkeypatch):
    s = load_settings(monkeypatch, CELERY_BROKER_URL="redis://127.0.0.1:6379/0")

    assert s.CELERY_BROKER_URL == "redis://127.0.0.1:6379/0"
    assert s.CELERY_ACCEPT_CONTENT == ["json"]
    assert s.CELERY_TASK_SERIALIZER == s.CELERY_RESULT_SERIALIZER == "json"


def test_secret_key_comes_from_the_environment_when_set(monkeypatch):
    # Without it, a generated key file (tests/governance/test_security.py).
    s = load_settings(monkeypatch, DEBUG="false", SECRET_KEY="s3cret")
    assert s.SECRET_KEY == "s3cret"


# --- manage.py engine_demo ----------------------------------------------------------------


@pytest.fixture
def fake_demo(monkeypatch):
    """Stand in for unlearning.demo so the command is tested without training a model."""
    module = types.ModuleType("unlearning.demo")
    module.calls = []
    module.exit_code = 0

    def main(argv):
        module.calls.append(argv)
        return module.exit_code

    module.main = main
    monkeypatch.setitem(sys.modules, "unlearning.demo", module)
    return module


def test_engine_demo_command_passes_quick_through(fake_demo):
    call_command("engine_demo", "--quick")
    call_command("engine_demo")

    assert fake_demo.calls == [["--quick"], []]


def test_engine_demo_command_fails_when_demo_fails(fake_demo):
    fake_demo.exit_code = 2

    with pytest.raises(CommandError, match="exit status 2"):
        call_command("engine_demo", "--quick")


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="prepared statements: PostgreSQL")
def test_prepare_threshold_makes_postgresql_plan_a_repeated_statement_once(monkeypatch):
    """The options parse_database_url writes reach psycopg: on a connection made with them,
    the second run of an ORM query is a server-side prepared statement; without them, none."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    from governance.models import Subject

    def prepared_after_two_runs(options: dict[str, object]) -> list[str]:
        wrapper = DatabaseWrapper({**connection.settings_dict, "OPTIONS": options})
        try:
            with wrapper.cursor() as cursor:
                sql, params = Subject.objects.filter(external_ref="x").query.sql_with_params()
                for _ in range(2):
                    cursor.execute(sql, params)
                    cursor.fetchall()
                cursor.execute("SELECT statement FROM pg_prepared_statements")
                return [row[0] for row in cursor.fetchall()]
        finally:
            wrapper.close()

    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", "1")
    options = parse_database_url("postgres://h/lethe")["OPTIONS"]

    prepared = prepared_after_two_runs(options)
    assert [s for s in prepared if "governance_subject" in s], prepared
    assert prepared_after_two_runs({}) == []
