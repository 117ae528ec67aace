"""``/api/v1/health/``: database, broker and worker liveness for an orchestrator.

Heartbeats are written by the real service the worker bootstep calls; the broker checks
open real connections (the shared Redis, and a port where nothing listens).
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from celery_worker.celery import app
from governance.models import WorkerHeartbeat
from governance.services.workers import worker_heartbeat_beat, worker_heartbeat_clear
from tests.net import free_port

pytestmark = pytest.mark.django_db
URL = "/api/v1/health/"
ALL_QUEUES = ["control", "default", "training", "webhooks"]


def _beat(hostname: str, queues: list[str], ago: float = 0.0) -> None:
    worker_heartbeat_beat(hostname=hostname, queues=queues, pid=4242, started_at=timezone.now())
    if ago:
        WorkerHeartbeat.objects.filter(hostname=hostname).update(
            last_seen=timezone.now() - timedelta(seconds=ago)
        )


def test_no_worker_seen_is_503_naming_the_workers(client):
    response = client.get(URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["down"] == ["workers"]
    assert body["checks"] == {"database": "up", "broker": "up", "workers": "down"}
    assert body["workers"] | {"stale_after_s": 0} == {
        "alive": 0,
        "queues": {"training": 0, "control": 0, "webhooks": 0, "default": 0},
        "missing_queues": ["training", "control", "webhooks", "default"],
        "last_seen_s": None,
        "stale_after_s": 0,
    }
    assert response["Cache-Control"] == "no-store"


def test_fresh_heartbeats_for_every_queue_are_200(client):
    _beat("training-11@node-a", ["training"])
    _beat("control-12@node-a", ["control", "webhooks", "default"])

    response = client.get(URL)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["down"]) == ("ok", [])
    assert body["checks"] == {"database": "up", "broker": "up", "workers": "up"}
    assert body["workers"]["alive"] == 2
    assert body["workers"]["queues"] == {"training": 1, "control": 1, "webhooks": 1, "default": 1}
    assert 0 <= body["workers"]["last_seen_s"] < 5
    # Counts and ages only: nothing names a machine or a process.
    assert "node-a" not in response.content.decode()
    assert "4242" not in response.content.decode()


def test_a_stale_or_missing_queue_is_down(client, settings):
    settings.LETHE_WORKER_STALE_S = 30
    _beat("training-11@node-a", ["training"], ago=31)  # stopped beating
    _beat("control-12@node-a", ["control", "webhooks", "default"])

    body = client.get(URL).json()

    assert body["down"] == ["workers"]
    assert body["workers"]["missing_queues"] == ["training"]
    assert body["workers"]["alive"] == 1


def test_a_worker_that_stops_cleanly_is_gone_at_once(client):
    for queues in (["training"], ALL_QUEUES):
        _beat(f"w-{len(queues)}@h", queues)
    worker_heartbeat_clear(hostname="w-4@h")

    assert client.get(URL).json()["workers"]["missing_queues"] == ["control", "webhooks", "default"]


def test_old_rows_of_dead_workers_are_pruned():
    _beat("dead@h", ALL_QUEUES, ago=2 * 86400)
    _beat("alive@h", ALL_QUEUES)

    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["alive@h"]


@pytest.fixture
def broker_url(monkeypatch):
    """Point the app at another broker for one test, then restore it. Celery reads
    ``CELERY_BROKER_URL`` from the environment before its configuration, so CI's variable
    is set aside for the test."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.broker_transport)

    def point(url: str) -> None:
        app.conf.broker_url = url
        app.conf.broker_transport_options = {}
        app.conf.broker_transport = None  # the embedded default names its own transport

    yield point
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.broker_transport = saved


def test_an_unreachable_broker_is_down(client, broker_url):
    _beat("all@h", ALL_QUEUES)
    port = free_port()
    broker_url(f"redis://127.0.0.1:{port}/0")

    response = client.get(URL)

    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
    assert str(port) not in response.content.decode()  # no address in the answer


def test_a_reachable_redis_broker_is_up(client, broker_url):
    _beat("all@h", ALL_QUEUES)
    broker_url("redis://127.0.0.1:6379/9")

    response = client.get(URL)

    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"] == "up"


def test_database_down_is_503_and_workers_unknown(client):
    broken = mock.Mock(vendor="postgresql")
    broken.cursor.side_effect = OperationalError("connection refused")

    with mock.patch("governance.selectors.workers.connection", broken):
        response = client.get(URL)

    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "postgresql"
    assert body["down"] == ["database", "workers"]
