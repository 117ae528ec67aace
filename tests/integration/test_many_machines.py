"""Lethe as a multi-machine deployment: two training workers, one control worker and one
web process, each with its own local folders, sharing only PostgreSQL, Redis and an
S3-compatible bucket (a real SeaweedFS, tests/s3.py).

A model with more sequences than slices (B > L: prefixes shared across sequences, so a
worker continues stages another trained) trains to completion with stages trained on both
workers; an erasure filed and approved through the web process completes with a
certificate that verifies; afterwards the destroyed stages' objects are in neither the
bucket (asked with boto3 directly, not through Lethe's code) nor any process's cache
folder or ARTIFACT_ROOT; and the web process predicts with the new manifest.

Which worker trained a stage is read from the workers' own cache folders: a worker writes
each stage it trains into its cache as it stores it, and a *leaf* stage (the whole
sequence) is nobody's parent, so no other training worker ever reads it. A leaf's object
in a worker's cache therefore means that worker trained it.

Only on PostgreSQL + Redis (CI's first run): SQLite and the file-system broker are the
embedded one-machine default and cannot be shared by machines.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import connection

from governance.certificates.claims import certificate_claims_check
from governance.certificates.signing import certificate_verify
from governance.models import (
    ErasureRequest,
    Record,
    ServingManifest,
    Stage,
    TrainingJob,
    WorkerHeartbeat,
)
from tests.integration.test_worker import REPO, Worker, _create_model, _database_url
from tests.net import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
API = "/api/v1"
GUNICORN = Path(sys.executable).with_name("gunicorn")
SLICES, SEQUENCES = 3, 4  # cyclic: (0,1,2) (2,0,1) (1,2,0) (0,2,1); (0,) is shared
START_S, TRAIN_S, ERASE_S, EVICT_S = 180.0, 300.0, 120.0, 30.0


@pytest.fixture
def multi_machine_stack(settings):
    """Skip unless the database and broker are ones several machines can share."""
    if connection.vendor == "sqlite":
        pytest.skip("many machines need a shared database: DATABASE_URL is SQLite (embedded)")
    broker = str(settings.CELERY_BROKER_URL or "")
    if not broker.startswith(("redis://", "rediss://")):
        pytest.skip(f"many machines need a shared broker: CELERY_BROKER_URL is {broker!r}")


@pytest.fixture
def deployment_keys(settings) -> dict[str, str]:
    """One deployment's keys, in configuration, the same for every process (and this test
    process, whose audit events join the same chain)."""
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    keys = {
        "LETHE_SIGNING_KEY": pem,
        "LETHE_AUDIT_KEY": secrets.token_hex(32),
        "SECRET_KEY": secrets.token_urlsafe(50),
    }
    settings.LETHE_SIGNING_KEY = keys["LETHE_SIGNING_KEY"]
    settings.LETHE_AUDIT_KEY = keys["LETHE_AUDIT_KEY"]
    from governance.certificates.signing import signing_key_cache_clear

    signing_key_cache_clear()
    yield keys
    signing_key_cache_clear()


@dataclass
class Machine:
    """One "machine": its own artifact folder, stage cache and scratch space."""

    name: str
    root: Path

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.root / "stage-cache"

    def env(self, shared: dict[str, str]) -> dict[str, str]:
        for folder in ("artifacts", "stage-cache", "tmp", "keys", "static", "broker"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        return {
            **shared,
            "ARTIFACT_ROOT": str(self.artifact_root),
            "LETHE_ARTIFACT_CACHE_DIR": str(self.cache_dir),
            "TMPDIR": str(self.root / "tmp"),
            "LETHE_BROKER_DIR": str(self.root / "broker"),
            "STATIC_ROOT": str(self.root / "static"),
            # Never used (the keys are configured); here so nothing falls back to var/.
            "LETHE_SIGNING_KEY_PATH": str(self.root / "keys" / "signing.pem"),
            "LETHE_AUDIT_KEY_PATH": str(self.root / "keys" / "audit.key"),
            "LETHE_SECRET_KEY_PATH": str(self.root / "keys" / "django-secret.key"),
        }

    def cached_keys(self) -> set[str]:
        """Object keys of the stage files in this machine's cache folder."""
        if not self.cache_dir.is_dir():
            return set()
        return {
            p.relative_to(self.cache_dir).as_posix()
            for p in self.cache_dir.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        }

    def stage_files(self) -> set[str]:
        """Stage files in this machine's ARTIFACT_ROOT (relative paths): with the bucket
        configured there must be none, before or after an erasure."""
        if not self.artifact_root.is_dir():
            return set()
        return {
            p.relative_to(self.artifact_root).as_posix()
            for p in self.artifact_root.rglob("*.safetensors*")
            if p.is_file()
        }


class Web:
    """gunicorn with the repository's gunicorn.conf.py on a free loopback port."""

    def __init__(self, machine: Machine, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = machine.root / "gunicorn.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(GUNICORN), "governance.wsgi"],  # gunicorn.conf.py from the working directory
            cwd=REPO,
            env={
                **env,
                "LETHE_BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": "1",
                "LETHE_WEB_THREADS": "2",
                "LETHE_WEB_TIMEOUT_S": "180",  # a first prediction loads a model on 2 cores
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """One JSON request; (status, decoded body)."""
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=180)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def healthy(self) -> bool:
        """True once the API answers (503 too: health may count a worker down)."""
        try:
            status, _ = self.call("GET", f"{API}/health/")
        except OSError:
            return False
        return status in (200, 503)

    def stop(self) -> None:
        _stop_group(self.process)
        self._log.close()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL what is left after a grace period."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


@dataclass
class Deployment:
    training: list[Worker]
    control: Worker
    web: Web
    machines: dict[str, Machine]

    def logs(self) -> str:
        parts = [f"--- {w.name} ---\n{w.log()}" for w in [*self.training, self.control]]
        return "\n".join([*parts, f"--- web ---\n{self.web.log()}"])

    def check_alive(self, what: str) -> None:
        for process, name in [
            *((w.process, w.name) for w in [*self.training, self.control]),
            (self.web.process, "web"),
        ]:
            if process.poll() is not None:
                pytest.fail(f"{name} exited while waiting for {what}:\n{self.logs()}")

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.check_alive(what)
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.logs()}")


@contextlib.contextmanager
def deployment_running(tmp_path: Path, shared: dict[str, str]) -> Iterator[Deployment]:
    """Start every process, each as its own machine; stop every process group at the end."""
    names = ("training-a", "training-b", "control", "web")
    machines = {name: Machine(name, tmp_path / name) for name in names}
    started: list[Any] = []
    try:
        training = []
        for name in ("training-a", "training-b"):
            worker = Worker(
                machines[name].root,
                lease_seconds=20,
                queues="training",
                env=machines[name].env(shared),
                name=name,
            )
            started.append(worker)
            training.append(worker)
        control = Worker(
            machines["control"].root,
            queues="control,default",
            env=machines["control"].env(shared),
            name="control",
        )
        started.append(control)
        web = Web(machines["web"], machines["web"].env(shared))
        started.append(web)
        yield Deployment(training, control, web, machines)
    finally:
        for process in reversed(started):
            process.stop()


def _shared_env(s3_artifacts: Any, keys: dict[str, str]) -> dict[str, str]:
    """What every machine shares: database, broker, bucket, keys; DEBUG off."""
    base = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DEBUG", "SECRET_KEY_FILE", "LETHE_SIGNING_KEY_FILE")
        and not name.startswith("LETHE_ARTIFACT")
    }
    return {
        **base,
        **s3_artifacts.env(),
        **keys,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": str(settings.CELERY_BROKER_URL),
        "LETHE_TORCH_THREADS": "1",
        "LETHE_DEVICE": "cpu",
    }


def _bucket_holds(s3_artifacts: Any, key: str) -> list[str]:
    """What the bucket still keeps of an object key, asked with boto3 directly: listed
    objects and versions whose key starts with the stage's stem (any training attempt),
    and a HEAD on the key itself."""
    client = s3_artifacts.client()
    bucket, full = s3_artifacts.bucket, s3_artifacts.bucket_key(key)
    stem = full.split(".", 1)[0] + "."  # ".../stage-0-1." for every attempt's object
    found = [
        f"object {item['Key']}"
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=stem)
        for item in page.get("Contents", [])
    ]
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=stem):
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            found.append(f"version {item['Key']}@{item.get('VersionId')}")
    try:
        client.head_object(Bucket=bucket, Key=full)
        found.append(f"HEAD {full}")
    except client.exceptions.ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
            raise  # only "not found" means gone
    return found


def _settled(status: str, done: str) -> str | None:
    """The status once it is final (``done`` or failed), else None: a failure is reported
    at once with the logs instead of after the whole timeout."""
    return status if status in (done, "failed") else None


def _serving_subject(model_id: int) -> tuple[str, set[int]]:
    """A subject whose record is in the first stage the serving manifest uses, so every
    stage the web process loaded is among those the erasure destroys."""
    manifest = ServingManifest.objects.filter(model=model_id).order_by("-version")[0]
    served = {int(s["id"]) for e in manifest.entries for s in e["stages"]}
    first = Stage.objects.get(pk=int(manifest.entries[0]["stages"][0]["id"]))
    subject = (
        Record.objects.filter(assignments__slice__in=first.slices.all())
        .order_by("pk")
        .values_list("subject__external_ref", flat=True)
        .first()
    )
    assert subject
    return subject, served


def test_two_training_workers_a_control_worker_and_a_web_process(
    multi_machine_stack,
    deployment_keys,
    s3_artifacts,
    shared_dirs,
    engineer,
    integration,
    officer,
    auditor,
    sample,
    tmp_path,
):
    model_id = _create_model(
        engineer,
        integration,
        sample,
        "many-machines",
        shards=1,
        slices=SLICES,
        sequences=SEQUENCES,
        sequence_policy="cyclic",
    )
    shared = _shared_env(s3_artifacts, deployment_keys)
    with deployment_running(tmp_path, shared) as d:
        machines = d.machines
        d.wait(
            lambda: (
                all(w.ready() for w in [*d.training, d.control])
                and WorkerHeartbeat.objects.count() >= 3
                and d.web.healthy()
            ),
            START_S,
            "three workers ready and the web process answering",
        )
        # --- train on both workers, through the web process ------------------------------
        status, body = d.web.call("POST", f"{API}/models/{model_id}/train/", engineer.key)
        assert status == 202, body
        trained = d.wait(
            lambda: _settled(TrainingJob.objects.get(model=model_id).status, "succeeded"),
            TRAIN_S,
            "the training job",
        )
        assert trained == "succeeded", d.logs()
        stages = list(Stage.objects.filter(shard__model=model_id))
        assert len(stages) == 11  # 3 + 3 + 3 + 2: (0,2,1) continues (0,)
        assert {s.state for s in stages} == {"trained"}
        leaves = {s.artifact_key for s in stages if s.position == SLICES}
        trained_by = {
            name: leaves & machines[name].cached_keys() for name in ("training-a", "training-b")
        }
        assert all(trained_by.values()), f"leaf stages per worker cache: {trained_by}"
        assert trained_by["training-a"].isdisjoint(trained_by["training-b"]), trained_by
        assert set().union(*trained_by.values()) == leaves
        for stage in stages:  # every object is in the bucket, none in a local folder
            assert _bucket_holds(s3_artifacts, stage.artifact_key), stage.artifact_key
        assert not any(m.stage_files() for m in machines.values())

        # --- the web process serves (and caches) the manifest's stages -------------------
        status, before = d.web.call(
            "POST", f"{API}/models/{model_id}/predict/", integration.key, {"inputs": ["refund"]}
        )
        assert status == 200, before
        subject, served = _serving_subject(model_id)
        served_keys = {s.artifact_key for s in stages if s.pk in served}
        assert served_keys <= machines["web"].cached_keys()

        # --- an erasure, filed and approved through the web process ----------------------
        status, filed = d.web.call(
            "POST",
            f"{API}/erasure-requests/",
            integration.key,
            {"subject_id": subject, "reason": "Art. 17"},
        )
        assert status == 201, filed
        status, approved = d.web.call(
            "POST", f"{API}/erasure-requests/{filed['id']}/approve/", officer.key, {}
        )
        assert status == 200, approved
        erased = d.wait(
            lambda: _settled(ErasureRequest.objects.get(pk=filed["id"]).status, "completed"),
            ERASE_S,
            "the erasure to complete",
        )
        assert erased == "completed", d.logs()
        destroyed = {
            s.artifact_key for s in Stage.objects.filter(shard__model=model_id, state="destroyed")
        }
        assert served_keys <= destroyed

        # --- no bytes left: bucket, every cache (after the broadcast), every folder ------
        left = {k: found for k in sorted(destroyed) if (found := _bucket_holds(s3_artifacts, k))}
        assert not left, left

        def caches_clean() -> bool:
            return not any(destroyed & m.cached_keys() for m in machines.values())

        d.wait(caches_clean, EVICT_S, "every process's cache to drop the destroyed stages")
        assert not any(m.stage_files() for m in machines.values())

        # --- the certificate verifies, through the web process and here ------------------
        status, envelope = d.web.call(
            "GET", f"{API}/erasure-requests/{filed['id']}/certificate/", auditor.key
        )
        assert status == 200, envelope
        status, verdict = d.web.call("POST", f"{API}/certificates/verify/", auditor.key, envelope)
        assert status == 200, verdict
        assert verdict["ok"], verdict
        status, keys = d.web.call("GET", f"{API}/certificates/public-keys/")
        assert status == 200, keys
        (current,) = [k for k in keys if k["current"]]
        assert certificate_verify(envelope, public_key_pem=current["public_key_pem"]).ok
        assert all(c["ok"] for c in certificate_claims_check(envelope))
        certified = {
            s["id"] for m in envelope["certificate"]["models"] for s in m["stages_deactivated"]
        }
        assert certified == set(
            Stage.objects.filter(shard__model=model_id, state="destroyed").values_list(
                "pk", flat=True
            )
        )

        # --- the web process predicts with the new manifest ------------------------------
        latest = ServingManifest.objects.filter(model=model_id).order_by("-version")[0]
        assert latest.version > before["manifest_version"]
        status, after = d.web.call(
            "POST", f"{API}/models/{model_id}/predict/", integration.key, {"inputs": ["refund"]}
        )
        assert status == 200, after
        assert after["manifest_version"] == latest.version
        assert all(p["label"] in sample.labels for p in after["predictions"])
        d.check_alive("the end of the test")
