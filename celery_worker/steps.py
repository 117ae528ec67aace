"""Worker bootsteps: the heartbeat health reads, and the re-queue on every broker connect.

``Heartbeat`` (worker blueprint) writes this worker's row every ``LETHE_WORKER_HEARTBEAT_S``
from a thread, so a worker busy with an hour-long training task still shows as alive.

``ResumeOnConnect`` (consumer blueprint) runs each time the consumer (re)connects to the
broker: Celery restarts the consumer's steps after a connection loss, so its ``start``
is the first moment the broker is known to be back. A control worker then queues again
every request left approved or executing, so an approval made while the broker was down
is carried out at once rather than after the sweeper's ``LETHE_ERASURE_STUCK_SECONDS``.
Duplicate messages are harmless: execution locks the request and resumes from its phase.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from typing import Any

from celery import bootsteps
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

log = logging.getLogger(__name__)


def _queues(app: Any) -> list[str]:
    return sorted(app.amqp.queues.consume_from or app.amqp.queues)


class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """A thread that records this worker in ``WorkerHeartbeat`` until the worker stops."""

    label = "LetheHeartbeat"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        from django.conf import settings

        args = (worker.hostname, _queues(worker.app), settings.LETHE_WORKER_HEARTBEAT_S)
        self._thread = threading.Thread(
            target=self._run, args=args, name="lethe-heartbeat", daemon=True
        )
        self._thread.start()

    def _run(self, hostname: str, queues: list[str], interval: int) -> None:
        from governance.services.workers import worker_heartbeat_beat

        started = timezone.now()
        while True:
            try:
                worker_heartbeat_beat(
                    hostname=hostname, queues=queues, pid=os.getpid(), started_at=started
                )
            except DatabaseError as exc:  # the database may be restarting: beat again later
                log.warning("heartbeat not recorded: %s", exc)
                close_old_connections()
            if self._stop.wait(interval):
                break
        connection.close()

    def stop(self, worker: Any) -> None:
        from governance.services.workers import worker_heartbeat_clear

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            worker_heartbeat_clear(hostname=worker.hostname)
        except DatabaseError as exc:
            log.warning("heartbeat not cleared: %s", exc)


class ResumeOnConnect(bootsteps.StartStopStep):  # type: ignore[misc]
    """On every broker (re)connection, a control worker re-queues unfinished erasures."""

    label = "LetheResumeOnConnect"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, consumer: Any) -> None:
        from governance.services.erasure_execution import erasure_requests_stuck

        if "control" not in _queues(consumer.app):
            return
        try:
            ids = erasure_requests_stuck(older_than=timedelta(0))
        except DatabaseError as exc:  # the beat sweeper and the next reconnect try again
            log.warning("erasures not re-queued on connect: %s", exc)
            close_old_connections()
            return
        if ids:
            log.info("broker connected: re-queued erasure requests %s", ids)
