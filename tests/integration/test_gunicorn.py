"""A real gunicorn, started as the operations page says, on a free loopback port against a
private SQLite file: health, a static file through WhiteNoise with DEBUG off, and chunked
JSON bodies (accepted under the limit, 413 over it) through the whole stack."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
LIMIT = 4096  # LETHE_MAX_UPLOAD_BYTES for this server


def _manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def server(tmp_path):
    """gunicorn on a fresh installation: no SECRET_KEY, no DEBUG, a private database and
    key folder; migrate and collectstatic first, as docs/operations.md says."""
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "CELERY_BROKER_URL")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path}/lethe.sqlite3",
        STATIC_ROOT=str(tmp_path / "static"),
        ARTIFACT_ROOT=str(tmp_path / "artifacts"),
        LETHE_BROKER_DIR=str(tmp_path / "broker"),
        LETHE_SECRET_KEY_PATH=str(tmp_path / "keys" / "django-secret.key"),
        LETHE_SIGNING_KEY_PATH=str(tmp_path / "keys" / "signing.pem"),
        LETHE_AUDIT_KEY_PATH=str(tmp_path / "keys" / "audit.key"),
        LETHE_MAX_UPLOAD_BYTES=str(LIMIT),
        LETHE_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
    )
    _manage(env, "migrate", "--no-input", "-v0")
    _manage(env, "collectstatic", "--no-input", "-v0")
    assert (tmp_path / "static" / "lethe" / "lethe.css").exists()
    token = _manage(
        env,
        "shell",
        "--no-imports",
        "-c",
        "from governance.permissions import Role\n"
        "from governance.services.accounts import user_create_with_role\n"
        "print(user_create_with_role(username='olivia', role=Role.PRIVACY_OFFICER)[1])",
    ).splitlines()[-1]
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(GUNICORN), "governance.wsgi"],  # gunicorn.conf.py from the working directory
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_healthy(port, process, tmp_path / "gunicorn.log")
        yield {"port": port, "token": token, "log": tmp_path / "gunicorn.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_healthy(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited {process.returncode}:\n{log.read_text()}")
        try:
            # 503 is an answer too: no Celery worker runs here, and health says so.
            status, _, _ = _request(port, "GET", "/api/v1/health/")
            if status in (200, 503):
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()}")


def _request(port, method, path, body=None, headers=None, chunked=False):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            # No Content-Length: the body goes as Transfer-Encoding: chunked, in pieces.
            connection.putrequest(method, path)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for start in range(0, len(body), 100):
                piece = body[start : start + 100]
                connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            connection.send(b"0\r\n\r\n")
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_gunicorn_serves_health_static_files_and_chunked_bodies(server):
    port, token = server["port"], server["token"]
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    status, health_headers, body = _request(port, "GET", "/api/v1/health/")
    assert status in (200, 503), body  # 503: no worker in this test, the database is up
    assert json.loads(body)["database"] == "sqlite"
    assert "no-store" in health_headers["Cache-Control"]
    assert "default-src 'none'" in health_headers["Content-Security-Policy"]

    status, css_headers, css = _request(port, "GET", "/static/lethe/lethe.css")
    assert status == 200
    assert css_headers["Content-Type"].startswith("text/css")
    assert b"--grey-ink" in css
    assert "no-store" not in css_headers.get("Cache-Control", "")

    filing = json.dumps({"subject_id": "subj-chunked", "reason": "streamed " * 60}).encode()
    assert 500 < len(filing) < LIMIT
    status, answer_headers, answer = _request(
        port, "POST", "/api/v1/erasure-requests/", filing, headers, chunked=True
    )
    assert status == 201, answer
    assert json.loads(answer)["subject_id"] == "subj-chunked"
    assert "no-store" in answer_headers["Cache-Control"]
    status, _, listed = _request(port, "GET", "/api/v1/erasure-requests/", headers=headers)
    assert status == 200
    assert "subj-chunked" in listed.decode()

    too_big = json.dumps({"subject_id": "subj-big", "reason": "x" * (2 * LIMIT)}).encode()
    status, _, answer = _request(
        port, "POST", "/api/v1/erasure-requests/", too_big, headers, chunked=True
    )
    assert status == 413, answer
    assert json.loads(answer)["error"]["code"] == "payload_too_large"

    # One access line per request, with the request id Lethe answered with.
    filed = [
        line
        for line in server["log"].read_text().splitlines()
        if '"POST /api/v1/erasure-requests/ HTTP/1.1" 201' in line
    ]
    assert len(filed) == 1, server["log"].read_text()
    assert re.search(r" \d+ms rid=[0-9a-f]{32} ", filed[0]), filed[0]
