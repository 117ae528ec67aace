"""Secure by default: DEBUG and SECRET_KEY, HTTPS settings, check --deploy, the
Content-Security-Policy, no-store caching, sign-in lockouts (audited), API throttling and
chunked request bodies (docs/operations.md "Security settings" and "Web server")."""

from __future__ import annotations

import io
import json
import os
import re
import runpy
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from governance.models import AuditEvent
from governance.secret_key import secret_key_file_load_or_create
from governance.services import erasure
from tests.governance.api_helpers import API, error_of
from tests.governance.test_foundation import load_settings
from tests.governance.web_helpers import browser

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"
SECURITY_VARIABLES = (
    "LETHE_SECRET_KEY_PATH",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "LETHE_API_THROTTLE_ANON",
    "LETHE_API_THROTTLE_USER",
    "CACHE_URL",
    "LETHE_TRUSTED_PROXY_COUNT",
)


@pytest.fixture
def clean_env(monkeypatch):
    return monkeypatch


def load(monkeypatch, **env):
    """Settings executed afresh under exactly ``env`` (no variable left from a load before)."""
    for name in SECURITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return load_settings(monkeypatch, **env)


# --- DEBUG and SECRET_KEY -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "preset", "expected"),
    [
        (["manage.py", "serve"], None, "true"),
        (["manage.py", "demo", "--quick"], None, "true"),
        (["manage.py", "runserver"], None, "true"),
        (["manage.py", "serve"], "false", "false"),  # an explicit DEBUG wins
        (["manage.py", "worker"], None, None),
        (["manage.py", "migrate"], None, None),
        (["manage.py"], None, None),
    ],
)
def test_only_the_embedded_commands_turn_debug_on(monkeypatch, argv, preset, expected):
    manage = runpy.run_path(str(REPO / "manage.py"))  # not __main__: defines, runs nothing
    if preset is None:
        monkeypatch.delenv("DEBUG", raising=False)
    else:
        monkeypatch.setenv("DEBUG", preset)

    manage["debug_default"](argv)

    assert os.environ.get("DEBUG") == expected


def test_without_secret_key_a_private_key_file_is_made_on_first_use(clean_env, tmp_path):
    path = tmp_path / "keys" / "django-secret.key"
    s = load(clean_env, LETHE_SECRET_KEY_PATH=str(path))

    assert s.DEBUG is False
    assert not path.exists()  # importing settings creates nothing
    key = str(s.SECRET_KEY)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 50
    assert not key.startswith("django-insecure")
    assert path.read_text().strip() == key
    # Another process of the same installation reads the same key.
    secret_key_file_load_or_create.cache_clear()
    assert str(load(clean_env, LETHE_SECRET_KEY_PATH=str(path)).SECRET_KEY) == key


def test_a_short_key_file_is_refused(clean_env, tmp_path):
    path = tmp_path / "short.key"
    path.write_text("too-short\n")
    s = load(clean_env, LETHE_SECRET_KEY_PATH=str(path))

    with pytest.raises(ImproperlyConfigured, match="fewer than 50"):
        str(s.SECRET_KEY)


def test_no_known_development_key_is_left_in_the_code():
    for path in (REPO / "governance").rglob("*.py"):
        assert "django-insecure" not in path.read_text(encoding="utf-8"), path


# --- HTTPS, HSTS, proxies, caches and throttle rates from the environment --------------------


def test_https_settings_come_from_the_environment(clean_env):
    s = load_settings(
        clean_env,
        SECURE_SSL_REDIRECT="true",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )

    assert s.SECURE_SSL_REDIRECT is True
    assert s.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert s.SECURE_HSTS_SECONDS == 31536000
    assert s.SECURE_HSTS_INCLUDE_SUBDOMAINS is s.SECURE_HSTS_PRELOAD is True
    plain = load(clean_env)
    assert (plain.SECURE_SSL_REDIRECT, plain.SECURE_PROXY_SSL_HEADER) == (False, None)
    assert plain.SECURE_HSTS_SECONDS == 0


@pytest.mark.parametrize("value", ["X-Forwarded-Proto", "X-Forwarded-Proto:", "X Proto: https"])
def test_a_malformed_proxy_header_is_refused(clean_env, value):
    with pytest.raises(ImproperlyConfigured, match="SECURE_PROXY_SSL_HEADER"):
        load(clean_env, SECURE_PROXY_SSL_HEADER=value)


def test_cache_and_throttle_rates_come_from_the_environment(clean_env):
    s = load_settings(
        clean_env,
        CACHE_URL="redis://127.0.0.1:6379/7",
        LETHE_API_THROTTLE_USER="50/second",
        LETHE_API_THROTTLE_ANON="off",
        LETHE_TRUSTED_PROXY_COUNT="1",
    )

    assert s.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert s.CACHES["default"]["LOCATION"] == "redis://127.0.0.1:6379/7"
    assert s.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] == {"anon": None, "user": "50/second"}
    assert s.REST_FRAMEWORK["NUM_PROXIES"] == 1
    defaults = load(clean_env)
    assert defaults.CACHES["default"]["BACKEND"].endswith("LocMemCache")
    # Generous enough for the load bench: one token at 60 requests/s.
    assert defaults.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"] == "6000/minute"


@pytest.mark.parametrize(
    ("name", "value"),
    [("LETHE_API_THROTTLE_USER", "fast"), ("LETHE_API_THROTTLE_ANON", "0/minute"),
     ("CACHE_URL", "memcached://127.0.0.1:11211")],
)  # fmt: skip
def test_malformed_cache_and_rates_are_refused(clean_env, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        load(clean_env, **{name: value})


def _documented_production_env() -> dict[str, str]:
    """The NAME=value block of docs/operations.md "Security settings"."""
    section = OPERATIONS.read_text(encoding="utf-8").split("## Security settings", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    env = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    assert {"DEBUG", "SECRET_KEY", "SECURE_HSTS_SECONDS", "ALLOWED_HOSTS"} <= set(env), env
    return env


def test_check_deploy_is_clean_under_the_documented_production_settings(tmp_path):
    env = {**os.environ, **_documented_production_env()}
    env["SECRET_KEY"] = secrets.token_urlsafe(64)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/deploy.sqlite3"
    env["STATIC_ROOT"] = str(tmp_path / "static")

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


@pytest.mark.django_db
def test_hsts_and_ssl_redirect_follow_the_settings(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()

    plain = client.get("/accounts/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/accounts/login/"
    # A load balancer's plain-HTTP health probe is not redirected.
    assert client.get(f"{API}/health/").status_code != 301
    proxied = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"


# --- Content-Security-Policy --------------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(officer):
    response = browser(officer).get("/")
    directives = (part.strip() for part in response["Content-Security-Policy"].split(";"))
    policy = dict(part.partition(" ")[::2] for part in directives if part)

    assert response.status_code == 200
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == policy["object-src"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE), "inline <script>"),
    (re.compile(r"<style\b", re.IGNORECASE), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.IGNORECASE), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "event handler attribute"),
    (re.compile(r"javascript:", re.IGNORECASE), "javascript: URL"),
]


def inline_code(text: str) -> list[str]:
    return [what for pattern, what in INLINE if pattern.search(text)]


def test_templates_hold_no_inline_code_the_policy_would_block():
    offenders = [
        f"{path.relative_to(REPO)}: {what}"
        for path in sorted((REPO / "templates").rglob("*.html"))
        for what in inline_code(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "move these into governance/static/lethe/:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "html",
    ["<script>alert(1)</script>", '<p style="color:red">', "<style>p{}</style>",
     '<a onclick="x()">', '<a href="javascript:x()">'],
)  # fmt: skip
def test_inline_code_scan_finds_planted_code(html):
    assert inline_code(html)
    assert not inline_code('<script src="/static/lethe/lethe.js" defer></script>')


# --- Cache-Control: no-store --------------------------------------------------------------


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


@pytest.mark.django_db
def test_pages_and_api_answers_naming_a_subject_are_no_store(officer):
    req, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="subj-0042")
    pages = browser(officer)

    for response in (
        pages.get("/"),
        pages.get(f"/requests/{req.pk}/"),
        pages.get("/lineage/", {"subject_ref": "subj-0042"}),
        officer.client.get(f"{API}/erasure-requests/{req.pk}/"),
        officer.client.get(f"{API}/erasure-requests/"),
        officer.client.get(f"{API}/subjects/subj-0042/lineage/"),
        officer.client.get(f"{API}/erasure-requests/{req.pk}/certificate/"),  # 404 or 409
        officer.client.get(f"{API}/no-such-endpoint/"),
        Client().get(f"{API}/health/"),
    ):
        assert _no_store(response), (response.wsgi_request.path, response.get("Cache-Control"))
    assert "subj-0042" in pages.get(f"/requests/{req.pk}/").content.decode()


@pytest.mark.django_db
def test_public_documents_and_static_files_may_be_cached(officer, settings, tmp_path):
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "signing.pem"
    anonymous = Client()

    schema = anonymous.get(f"{API}/schema/")
    key = anonymous.get(f"{API}/certificates/public-key/")
    css = anonymous.get("/static/lethe/lethe.css")

    assert (schema.status_code, key.status_code, css.status_code) == (200, 200, 200)
    assert not any(_no_store(r) for r in (schema, key, css))


# --- sign-in lockout, audited --------------------------------------------------------------


def _sign_in(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def _login_events():
    return list(
        AuditEvent.objects.filter(action__startswith="login.").values_list(
            "action", "object_id", "payload"
        )
    )


@pytest.mark.django_db
def test_repeated_failed_sign_ins_lock_the_account_and_are_audited(settings, officer):
    settings.AXES_FAILURE_LIMIT = 3
    officer.user.set_password("the-right-passphrase")
    officer.user.save()
    client = Client()

    answers = [_sign_in(client, "olivia", "wrong").status_code for _ in range(3)]
    locked = _sign_in(client, "olivia", "the-right-passphrase")

    assert answers == [200, 200, 429]
    assert locked.status_code == 429  # the right password does not get through a lockout
    assert "_auth_user_id" not in client.session
    assert "Sign-in locked" in locked.content.decode()
    pk = str(officer.user.pk)
    local = {"ip_address": "127.0.0.1"}
    assert _login_events() == [
        ("login.failed", pk, {**local, "locked_out": False}),
        ("login.failed", pk, {**local, "locked_out": False}),
        ("login.locked_out", pk, local),
        ("login.failed", pk, {**local, "locked_out": False}),
        ("login.failed", pk, {**local, "locked_out": True}),
    ]
    # Another address may still sign in: nobody elsewhere can lock an officer out.
    elsewhere = Client(REMOTE_ADDR="10.0.0.9")
    assert _sign_in(elsewhere, "olivia", "the-right-passphrase").status_code == 302


@pytest.mark.django_db
def test_a_name_that_is_no_account_is_not_written_to_the_trail():
    _sign_in(Client(), "hunter2-typed-in-the-wrong-field", "x")

    ((action, object_id, payload),) = _login_events()
    assert (action, object_id) == ("login.failed", "unknown")
    assert "hunter2" not in json.dumps(payload)


@pytest.mark.django_db
def test_a_successful_sign_in_resets_the_count(settings, officer):
    settings.AXES_FAILURE_LIMIT = 3
    officer.user.set_password("the-right-passphrase")
    officer.user.save()
    client = Client()
    for _ in range(2):
        _sign_in(client, "olivia", "wrong")
    assert _sign_in(client, "olivia", "the-right-passphrase").status_code == 302
    client.logout()

    assert [_sign_in(client, "olivia", "wrong").status_code for _ in range(2)] == [200, 200]


def test_client_address_behind_trusted_proxies(rf, settings):
    from governance.web_security import client_ip

    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.LETHE_TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"  # no proxy: the header is the client's claim
    settings.LETHE_TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "203.0.113.7"
    settings.LETHE_TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"


# --- API throttling ----------------------------------------------------------------------


@pytest.fixture
def low_rates(monkeypatch):
    # DRF reads the rates into the class when it is imported; the rates are settings, so
    # set them where DRF keeps them, for this test only.
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": "3/minute"}
    )
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_token_over_its_rate_gets_429_in_the_error_envelope(low_rates, officer):
    answers = [officer.client.get(f"{API}/erasure-requests/") for _ in range(4)]

    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    error = error_of(answers[3], 429, "throttled")
    wait = int(answers[3]["Retry-After"])
    assert 0 < wait <= 60
    assert error["details"] == {"retry_after": wait}
    assert _no_store(answers[3])


@pytest.mark.django_db
def test_anonymous_requests_are_throttled_per_address(low_rates, settings, tmp_path):
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "signing.pem"  # the public key's own
    client = Client()
    answers = [client.get(f"{API}/certificates/public-key/").status_code for _ in range(3)]
    other = Client(REMOTE_ADDR="10.0.0.9").get(f"{API}/certificates/public-key/")

    assert answers == [200, 200, 429]
    assert other.status_code == 200


REDIS_CACHE_URL = "redis://127.0.0.1:6379/9"


@pytest.fixture
def redis_cache(settings, low_rates):
    """The default cache on Redis (db 9), as CACHE_URL=redis://... configures it."""
    import redis

    try:
        redis.Redis.from_url(REDIS_CACHE_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_CACHE_URL}")
    from governance.setting_values import cache_from_url

    settings.CACHES = {"default": cache_from_url(REDIS_CACHE_URL)}
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_throttle_counts_are_shared_through_the_redis_cache(redis_cache, officer):
    """Two gunicorn workers share one Redis: requests counted by one count for the other."""
    import redis

    for _ in range(3):
        assert officer.client.get(f"{API}/erasure-requests/").status_code == 200
    # What another process sees: the counts are in Redis, not in this process.
    keys = redis.Redis.from_url(REDIS_CACHE_URL).keys("lethe:*throttle_user*")
    assert len(keys) == 1, keys
    other_worker = APIClient()
    other_worker.credentials(HTTP_AUTHORIZATION=f"Token {officer.key}")

    assert other_worker.get(f"{API}/erasure-requests/").status_code == 429


# --- chunked request bodies (the WSGI entry point) -----------------------------------------


def _call_wsgi(path: str, body: bytes, *, token: str, chunked: bool = True):
    """Call governance.wsgi.application as gunicorn would: a chunked body arrives decoded,
    with no CONTENT_LENGTH and ``wsgi.input_terminated`` set."""
    from governance.wsgi import application

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "HTTP_HOST": "localhost",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.input_terminated": True,
    }
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    status: list[str] = []
    # As Django's test client does: the request signals would close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, lambda s, headers, exc_info=None: status.append(s))
        content = b"".join(chunks)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(status[0].split()[0]), json.loads(content)


@pytest.mark.django_db
def test_a_chunked_json_body_reaches_the_api(officer):
    body = json.dumps({"subject_id": "subj-chunked", "reason": "streamed"}).encode()

    status, answer = _call_wsgi(f"{API}/erasure-requests/", body, token=officer.key)

    assert status == 201, answer
    assert answer["subject_id"] == "subj-chunked"


@pytest.mark.django_db
def test_a_chunked_body_over_the_limit_is_413(settings, officer):
    settings.LETHE_MAX_UPLOAD_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64
    body = json.dumps({"subject_id": "subj-chunked", "reason": "x" * 200}).encode()

    status, answer = _call_wsgi(f"{API}/erasure-requests/", body, token=officer.key)

    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
    assert answer["error"]["details"] == {"limit": 64}
