"""A broker outage during an approval (a private redis-server, stopped and started again):
the approval is durable and audited, the API says execution is pending (202), and the
worker queues it as soon as it reconnects, long before the sweeper would."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from kombu import pools

from celery_worker.celery import app
from governance.models import AuditEvent, DeletionCertificate, ErasureRequest
from tests.integration.test_worker import Worker, _wait
from tests.net import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
API = "/api/v1"


class Redis:
    """A throw-away redis-server on its own port (never the shared one on 6379)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.tmp_path = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _repoint(url: str, transport: str | None = None) -> None:
    """This test process publishes to ``url`` from now on (pools opened earlier dropped).

    ``transport``: the class the embedded default names (settings); None lets the URL say.
    """
    app.conf.broker_url = url
    app.conf.broker_transport = transport
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    # kombu keeps one global pool per broker URL: closing only the app's would leave that
    # closed pool registered, and the next acquire on the old URL would fail. reset() closes
    # and forgets them all.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_broker(monkeypatch, shared_dirs):
    saved = (
        app.conf.broker_url,
        dict(app.conf.broker_transport_options),
        app.conf.broker_transport,
    )
    redis = Redis(free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # the worker process's broker
    monkeypatch.setenv("LETHE_ERASURE_STUCK_SECONDS", "3600")  # the sweeper cannot be it
    _repoint(url)
    redis.tmp_path = shared_dirs
    yield redis
    redis.stop()
    _repoint(saved[0], saved[2])
    app.conf.broker_transport_options = saved[1]


def _file(integration, subject):
    filed = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": subject}, format="json"
    )
    assert filed.status_code == 201, filed.json()
    return filed.json()["id"]


def _completes(request_id, worker, what, timeout=120):
    _wait(
        lambda: ErasureRequest.objects.get(pk=request_id).status == "completed",
        worker,
        timeout=timeout,
        what=what,
    )


def test_an_approval_during_a_broker_outage_runs_when_the_broker_returns(
    integration, officer, redis_broker
):
    worker = Worker(redis_broker.tmp_path)
    try:
        warm = _file(integration, "subject-before")
        approved = officer.client.post(f"{API}/erasure-requests/{warm}/approve/")
        assert approved.status_code == 200, approved.json()
        _completes(warm, worker, "the first erasure (broker up)")
        pending = _file(integration, "subject-during")
        redis_broker.stop()
        approved = officer.client.post(f"{API}/erasure-requests/{pending}/approve/")
        assert approved.status_code == 202, approved.json()
        assert approved.json()["status"] == "approved"
        # Durable and audited although nothing could be queued.
        assert ErasureRequest.objects.get(pk=pending).status == "approved"
        assert AuditEvent.objects.filter(action="erasure.approved", object_id=str(pending)).exists()
        time.sleep(3)
        assert ErasureRequest.objects.get(pk=pending).status == "approved"
        redis_broker.start()
        back = time.monotonic()
        _completes(pending, worker, "the pending erasure after the broker returned", 60)
        recovered = time.monotonic() - back
    finally:
        worker.stop()
    assert recovered < 45, recovered  # the worker's reconnect backoff, not the 3600 s sweeper
    assert DeletionCertificate.objects.filter(request=pending).count() == 1
