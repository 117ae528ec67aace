"""Worker heartbeats: the rows ``/api/v1/health/`` reads to tell whether workers are alive."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per running Celery worker, rewritten every ``LETHE_WORKER_HEARTBEAT_S``.

    The database, not the broker, holds it: health must say "no worker" even while the
    broker is down, and every web process reads the same rows. ``hostname`` carries the
    worker's pid (``control-1234@host``), so a restarted worker is a new row and the dead
    one's row goes stale, then is pruned.
    """

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list, help_text="Queue names the worker consumes.")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.hostname} ({', '.join(self.queues)})"
