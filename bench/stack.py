"""The production stack on loopback, for the fault and load scripts (not a benchmark).

Every part is a real process of its own, started on a free port and stopped at the end:
a private ``redis-server``, optionally a private PostgreSQL cluster (``initdb``/``pg_ctl``
from /usr/lib/postgresql/*/bin, as the ``postgres`` user when run as root, in a temporary
folder), gunicorn serving ``governance.wsgi``, and ``manage.py worker`` (the supervised
control worker). The scripts talk to the web over HTTP with API tokens, exactly as a data
platform would, and read outcomes from the database with Django's ORM.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class Redis:
    """A redis-server of our own, with an append-only file so a restart keeps its queue."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--dir", str(self.folder)]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


class Postgres:
    """A private PostgreSQL cluster in a temporary folder, on its own port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            sys.exit("no /usr/lib/postgresql/*/bin/pg_ctl: install PostgreSQL server binaries")
        self.bin = Path(found[-1]).parent
        self.user = "postgres" if os.geteuid() == 0 else None

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *argv], check=True, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.user:
            record = pwd.getpwnam(self.user)
            os.chown(self.folder, record.pw_uid, record.pw_gid)
        data = str(self.folder / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-U", "postgres", "-A", "trust")
        self.start()

    def start(self) -> None:
        data, log = str(self.folder / "data"), str(self.folder / "server.log")
        options = f"-p {self.port} -k {self.folder} -c fsync=on -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        data = str(self.folder / "data")
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> None:
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')


class Service:
    """A child process with its log in the run folder; stopped with its process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path) -> None:
        self.name, self.argv, self.env, self.folder = name, argv, env, folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # a straggler in the group
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


def stack_env(folder: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment web and worker share: one database, one broker, one artifact root."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "ARTIFACT_ROOT": str(folder / "artifacts"),
        "LETHE_SIGNING_KEY_PATH": str(folder / "keys" / "signing.pem"),
        "LETHE_AUDIT_KEY": "bench-audit-key-not-a-secret-0123456789abcdef",
        "SECRET_KEY": "bench-only-not-a-secret",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LETHE_TORCH_THREADS": "1",
        "LETHE_LOG_LEVEL": "WARNING",
        # Persistent database connections (checked before reuse), as in production: a new
        # PostgreSQL connection per request forks a server process each time.
        "CONN_MAX_AGE": "60",
        # The load is one client per role: lift the per-user API rate for the run.
        "LETHE_API_THROTTLE_USER": "1000000/minute",
        "LETHE_API_THROTTLE_ANON": "1000000/minute",
        **extra,
    }


def gunicorn(env: dict[str, str], folder: Path, workers: int = 4, threads: int = 4) -> Service:
    port = free_port()
    argv = [str(Path(sys.executable).parent / "gunicorn"), "governance.wsgi"]
    argv += ["-b", f"127.0.0.1:{port}", "-w", str(workers), "--threads", str(threads)]
    service = Service("gunicorn", argv, env, folder)
    service.port = port  # type: ignore[attr-defined]
    return service


def worker(env: dict[str, str], folder: Path) -> Service:
    argv = [sys.executable, "manage.py", "worker", "--loglevel=warning"]
    return Service("worker", argv, env, folder)


class Http:
    """One keep-alive HTTP/1.1 connection to the web, with a token; JSON in and out."""

    def __init__(self, port: int, token: str, timeout: float = 30.0) -> None:
        self.port, self.token, self.timeout = port, token, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, float]:
        """(status, parsed body or None, seconds); status 0 when the connection failed."""
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        all_headers.update(headers or {})
        started = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(method, path, body=payload, headers=all_headers)
            response = self.conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return 0, None, time.perf_counter() - started
        elapsed = time.perf_counter() - started
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return status, data, elapsed


def tokens(database_url: str, **roles: str) -> dict[str, str]:
    """New accounts, one per ``name=role``, and their API keys (through the real service)."""
    from governance.services.accounts import user_create_with_role

    return {
        name: user_create_with_role(username=name, role=role)[1] for name, role in roles.items()
    }


def cleanup(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def duplicated(subject_refs: list[str], ids: set[int]) -> int:
    """Extra request rows for the subjects (one filing each), extra certificates and extra
    ``erasure.completed`` events for the acknowledged requests: 0 when each was done once."""
    from django.db.models import Count

    from governance.models import AuditEvent, DeletionCertificate, ErasureRequest

    rows = ErasureRequest.objects.filter(subject_ref__in=subject_refs).count()
    extra = {
        "certificates": DeletionCertificate.objects.filter(request__in=ids).values("request"),
        "events": AuditEvent.objects.filter(
            action="erasure.completed", object_id__in=[str(i) for i in ids]
        ).values("object_id"),
    }
    twice = sum(q.annotate(n=Count("id")).filter(n__gt=1).count() for q in extra.values())
    return rows - len(ids) + twice
