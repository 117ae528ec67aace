"""Thin tasks: take primary keys, import a governance service inside the body, call it.

Training tasks run on the ``training`` queue with late acknowledgement: a worker killed
mid-stage leaves its message unacknowledged, and the service resumes from the last stage
it recorded. Transient database errors retry through Celery's ``autoretry_for`` with
exponential backoff and full jitter (a random wait up to the backoff, so workers that lost
the database together do not come back together); a busy stage retries after a fixed wait.
The ``worker_ready`` hook that re-queues unfinished training lives here, with the tasks it
sends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError

from celery_worker.celery import app

TRANSIENT = (OperationalError, InterfaceError)


# celery ships no type hints, so its decorators are untyped to mypy.
@app.task(name="lethe.ping")  # type: ignore[untyped-decorator]
def ping() -> str:
    """Round-trip check for a worker and broker."""
    return "pong"


def _on_training_failure(
    self: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    from governance.services.training_tasks import training_task_fail

    training_task_fail(task_id=int(args[0]), error=f"{type(exc).__name__}: {exc}")


@app.task(  # type: ignore[untyped-decorator]
    name="lethe.train_sequence",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=5,  # 5 s, 10 s, 20 s ... capped below: the database may be restarting
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,  # shared with the busy-stage retries below
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
    on_failure=_on_training_failure,
)
def train_sequence(self: Any, training_task_id: int) -> None:
    """Train the unfinished stages of one (shard, sequence)."""
    from governance.services.training_tasks import StageBusy, training_task_run

    try:
        training_task_run(task_id=training_task_id)
    except StageBusy as exc:
        from django.conf import settings

        # Not autoretry: its wait doubles with each attempt and jitters down to zero, but a
        # busy stage frees at a known pace (a live worker finishes it, a dead one's lease
        # lapses), so poll at a fixed interval of at most a lease.
        raise self.retry(exc=exc, countdown=min(30, settings.LETHE_STAGE_LEASE_SECONDS)) from None


@app.task(name="lethe.requeue_stalled_training")  # type: ignore[untyped-decorator]
def requeue_stalled_training() -> int:
    """Beat sweeper: queue again training tasks that stopped making progress."""
    from governance.services.training_tasks import training_requeue_stalled

    return len(training_requeue_stalled(older_than=timedelta(minutes=15)))


def _on_erasure_failure(
    self: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    from governance.services.erasure import erasure_request_fail

    erasure_request_fail(request_id=int(args[0]), error=f"{type(exc).__name__}: {exc}")


@app.task(  # type: ignore[untyped-decorator]
    name="lethe.execute_erasure",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,  # 2 s, 4 s ... 60 s: an erasure is short and urgent
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=600,
    time_limit=660,
    on_failure=_on_erasure_failure,
)
def execute_erasure(request_id: int) -> str:
    """Deactivate, purge and certify one approved erasure request (idempotent phases)."""
    from governance.services.erasure_execution import erasure_request_execute

    return str(erasure_request_execute(request_id=request_id))


@app.task(name="lethe.sweep_erasures")  # type: ignore[untyped-decorator]
def sweep_erasures() -> dict[str, int]:
    """Beat sweeper: re-queue stuck requests and destroy stages left with bytes."""
    from django.conf import settings

    from governance.services.erasure_execution import erasure_requests_stuck, stages_purge_orphans

    stuck = erasure_requests_stuck(
        older_than=timedelta(seconds=settings.LETHE_ERASURE_STUCK_SECONDS)
    )
    return {"requeued": len(stuck), "destroyed": len(stages_purge_orphans())}


@app.task(name="lethe.audit_checkpoint")  # type: ignore[untyped-decorator]
def audit_checkpoint() -> int | None:
    """Beat: sign the audit trail's head (skipped when it has not moved since the last one)."""
    from governance.models import AuditCheckpoint
    from governance.services.audit_integrity import audit_checkpoint_create

    checkpoint = audit_checkpoint_create(reason=AuditCheckpoint.Reason.SCHEDULED)
    return checkpoint.seq if checkpoint is not None else None


@app.task(name="lethe.schedule_retraining")  # type: ignore[untyped-decorator]
def schedule_retraining() -> list[int]:
    """Beat: retrain, as a new generation, every shard whose serving depth fell too low."""
    from governance.services.retraining import models_retrain_due

    return [job.pk for job in models_retrain_due(actor="scheduler")]


def _on_lineage_failure(
    self: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    import logging

    subject, pk, state, _ = args
    logging.getLogger("governance.services.lineage_events").error(
        "OpenLineage %s event for %s %s not delivered, retries exhausted: %r",
        state,
        subject,
        pk,
        exc,
    )


@app.task(  # type: ignore[untyped-decorator]
    name="lethe.emit_openlineage",
    autoretry_for=(OSError, *TRANSIENT),  # requests' errors are OSErrors: refused, timeout, 5xx
    retry_backoff=10,  # 10 s, 20 s ... an hour: a catalog may be down for a while
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=12,
    soft_time_limit=120,
    time_limit=150,
    on_failure=_on_lineage_failure,
)
def emit_openlineage(subject: str, pk: int, state: str, at: str) -> str:
    """Send one OpenLineage RunEvent of a training job or an erasure (same event on retry)."""
    from governance.services.lineage_events import lineage_event_send

    return str(lineage_event_send(subject=subject, pk=pk, state=state, at=at))


@app.task(  # type: ignore[untyped-decorator]
    name="lethe.deliver_webhook",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=300,
    time_limit=330,
)
def deliver_webhook(delivery_id: int) -> str | None:
    """One attempt at one webhook delivery. Its retries (backoff with jitter, up to a day)
    are rows the ``sweep_webhooks`` beat re-queues when due, not Celery countdowns: a
    retry a day away survives any broker restart."""
    from governance.services.webhook_delivery import webhook_delivery_attempt

    return webhook_delivery_attempt(delivery_id=delivery_id)


@app.task(name="lethe.sweep_webhooks")  # type: ignore[untyped-decorator]
def sweep_webhooks() -> dict[str, int]:
    """Beat: queue due webhook retries; emit overdue events; remind pending confirmations."""
    from governance.services.confirmations import (
        erasure_confirmations_remind,
        erasure_requests_overdue_notify,
    )
    from governance.services.webhook_delivery import webhook_deliveries_due

    return {
        "overdue": len(erasure_requests_overdue_notify()),
        "reminded": len(erasure_confirmations_remind()),
        "queued": len(webhook_deliveries_due()),
    }


@worker_ready.connect  # type: ignore[untyped-decorator]
def _resume_unfinished(**_: object) -> None:
    """After a crash or restart, queue unfinished training again (duplicates are no-ops).

    Erasures are re-queued by the ``ResumeOnConnect`` bootstep (celery_worker/steps.py),
    which runs at this first connection and again after every broker outage.
    """
    from governance.artifacts import stage_cache_sweep
    from governance.services.training_tasks import training_requeue_stalled

    stage_cache_sweep()  # destroyed stages this machine's cache kept while the worker was down
    training_requeue_stalled()
