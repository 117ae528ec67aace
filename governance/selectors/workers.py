"""Health reads: the database, the broker and the workers' heartbeats.

``system_health`` is the one definition of "up" that ``/api/v1/health/`` reports: the
database answers, the broker accepts a connection, and every declared queue has at least
one worker whose heartbeat is fresher than ``LETHE_WORKER_STALE_S``. It reveals counts and
ages only, never hostnames, pids or the broker's address.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from governance.models import WorkerHeartbeat

log = logging.getLogger(__name__)
BROKER_TIMEOUT_S = 2.0


def database_up() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def broker_up() -> bool:
    """A fresh connection to the broker (Redis answers PING), bounded by a short timeout.

    The embedded file-system broker has no server: it is up when its queue folder is
    writable.
    """
    from celery_worker.celery import app

    if str(app.conf.broker_url).startswith("filesystem"):
        return os.access(str(app.conf.broker_transport_options["data_folder_in"]), os.W_OK)
    try:
        with app.connection_for_write(connect_timeout=BROKER_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_S)
    except Exception as exc:  # kombu raises the transport's own errors; any one means down
        log.warning("health: broker unreachable: %s", type(exc).__name__)
        return False
    return True


def workers_alive(*, now: datetime, queues: list[str]) -> dict[str, Any]:
    """Live workers per queue, the age of the freshest heartbeat, and queues nobody serves."""
    stale_after = settings.LETHE_WORKER_STALE_S
    fresh = list(
        WorkerHeartbeat.objects.filter(
            last_seen__gte=now - timedelta(seconds=stale_after)
        ).values_list("queues", "last_seen")
    )
    per_queue = {name: sum(name in q for q, _ in fresh) for name in queues}
    newest = max((seen for _, seen in fresh), default=None)
    return {
        "alive": len(fresh),
        "queues": per_queue,
        "missing_queues": [name for name, n in per_queue.items() if n == 0],
        "last_seen_s": None if newest is None else round((now - newest).total_seconds(), 1),
        "stale_after_s": stale_after,
    }


def system_health(*, now: datetime) -> dict[str, Any]:
    """Each dependency up or down, and the list of what is down (empty when all is well)."""
    from celery_worker.celery import app

    database = database_up()
    queues = [q.name for q in app.conf.task_queues]
    workers = (
        workers_alive(now=now, queues=queues)
        if database
        else {"alive": 0, "queues": {}, "missing_queues": queues, "last_seen_s": None}
        | {"stale_after_s": settings.LETHE_WORKER_STALE_S}
    )
    checks = {
        "database": database,
        "broker": broker_up(),
        "workers": database and not workers["missing_queues"],
    }
    return {
        "status": "ok" if all(checks.values()) else "error",
        "database": connection.vendor,
        "checks": {name: "up" if up else "down" for name, up in checks.items()},
        "down": [name for name, up in checks.items() if not up],
        "workers": workers,
    }
