"""The cache-eviction broadcast against the configured broker (Redis, or the embedded
file-system transport, which does fanout too): a real worker process with a stage cache of
its own drops a cached stage file when another process broadcasts ``lethe_cache_evict``,
and so does a web process's listener thread (governance/cache_listener.py). A broadcast
that cannot reach the broker is logged and never raises."""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kombu import Connection

from celery_worker.celery import app
from celery_worker.control import EVICT_COMMAND
from governance.artifacts import artifact_keys_evict_everywhere, stage_cache
from governance.cache_listener import cache_listener_start, cache_listener_stop
from governance.models import Shard, Stage
from tests.factories import UnlearningModelFactory
from tests.integration.test_worker import Worker
from tests.net import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
KEY = "model-1/gen-1/shard-000/stage-0.safetensors"
EVICTION_WAIT_S = 20.0


def _live_stage(object_key: str) -> Stage:
    """A trained stage naming ``object_key``: the cache sweep keeps its file, so only the
    broadcast can take it away."""
    model = UnlearningModelFactory(generation=1)
    shard = Shard.objects.create(model=model, generation=1, index=0)
    return Stage.objects.create(
        shard=shard, prefix="0", position=1, state=Stage.State.TRAINED, artifact_key=object_key
    )


def _cached(cache_dir: Path, object_key: str) -> Path:
    path = cache_dir / object_key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a cached stage file")
    return path


def _wait_gone(path: Path, what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + EVICTION_WAIT_S
    while path.exists():
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"worker exited before {what}:\n{worker.log()}")
        if time.monotonic() > deadline:
            log = f":\n{worker.log()}" if worker is not None else ""
            pytest.fail(f"{what}: {path} still cached after {EVICTION_WAIT_S:.0f} s{log}")
        time.sleep(0.1)


def _wait_for_remote_control(worker: Worker) -> None:
    """Until a worker answers ``ping``: its broadcast queue is bound and consumed."""
    deadline = time.monotonic() + 120
    while not app.control.ping(timeout=0.5):
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited before answering ping:\n{worker.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"worker never answered ping:\n{worker.log()}")


def _shared_deployment_keys(monkeypatch) -> None:
    """A process on S3 is a shared deployment: its keys come from configuration."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    monkeypatch.setenv("LETHE_SIGNING_KEY", pem.decode())
    monkeypatch.setenv("LETHE_AUDIT_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(50))


def test_a_broadcast_evicts_a_worker_cache(s3_artifacts, shared_dirs, monkeypatch, tmp_path):
    worker_cache = tmp_path / "worker-cache"
    for name, value in s3_artifacts.env(cache_dir=worker_cache).items():
        monkeypatch.setenv(name, value)
    _shared_deployment_keys(monkeypatch)
    _live_stage(KEY)
    cached = _cached(worker_cache, KEY)
    worker = Worker(shared_dirs)
    try:
        _wait_for_remote_control(worker)
        assert cached.exists()  # the start-up sweep kept a live stage's file
        assert artifact_keys_evict_everywhere([KEY]) == []  # this process held no copy
        _wait_gone(cached, "the worker's eviction", worker)
    finally:
        worker.stop()


def test_a_broadcast_evicts_a_web_process_cache(s3_artifacts):
    _live_stage(KEY)
    cache = stage_cache()
    assert cache is not None
    cached = _cached(cache.root, KEY)
    listener = cache_listener_start(hostname=f"lethe-web-test.{free_port()}@localhost")
    try:
        assert listener is not None
        assert listener.connected.wait(30), "the listener never connected to the broker"
        assert cached.exists()  # its sweep on connecting kept a live stage's file
        # Another process's broadcast (this one's own eviction would be local).
        with app.connection_for_write() as conn:
            app.control.broadcast(
                EVICT_COMMAND, arguments={"keys": [KEY]}, connection=conn, timeout=0
            )
        _wait_gone(cached, "the listener's eviction")
        # It hears the eviction command only: workers' commands are not for it.
        assert all(listener.hostname not in reply for reply in app.control.ping(timeout=1))
    finally:
        cache_listener_stop()
    assert not listener.thread.is_alive()


def test_a_broadcast_with_the_broker_down_is_logged_not_raised(s3_artifacts, caplog, monkeypatch):
    cache = stage_cache()
    assert cache is not None
    cached = _cached(cache.root, KEY)
    down = f"redis://127.0.0.1:{free_port()}/0"  # a real connection; nothing listens there
    monkeypatch.setattr(app, "connection_for_write", lambda **options: Connection(down, **options))
    with caplog.at_level(logging.WARNING, logger="governance.artifacts"):
        assert artifact_keys_evict_everywhere([KEY]) == [KEY]
    assert not cached.exists()  # this process's own copy is gone at once
    assert "cache eviction broadcast for 1 object(s) not sent" in caplog.text
