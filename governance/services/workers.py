"""Worker heartbeats: the worker side of ``/api/v1/health/`` (``selectors.workers`` reads).

A heartbeat is telemetry, not a governance decision: it is rewritten every few seconds
by every worker, so it is deliberately not audited (an audit event per beat would bury
the trail's real events). Rows of workers that stopped beating are pruned here, so the
table holds roughly one row per live worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone

from governance.models import WorkerHeartbeat

# A dead worker's row is kept this long (health shows it stale), then deleted.
PRUNE_AFTER = timedelta(days=1)


def worker_heartbeat_beat(
    *, hostname: str, queues: Sequence[str], pid: int, started_at: datetime
) -> None:
    """Record that ``hostname`` is alive now, consuming ``queues``."""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={"queues": sorted(queues), "pid": pid, "started_at": started_at, "last_seen": now},
    )
    WorkerHeartbeat.objects.filter(last_seen__lt=now - PRUNE_AFTER).delete()


def worker_heartbeat_clear(*, hostname: str) -> None:
    """A worker shutting down cleanly removes its row, so health need not wait for staleness."""
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()
