"""The beat schedule: django-celery-beat's database scheduler installs the sweepers and the
retraining entry, each routed to the control queue, and the tasks run as plain functions."""

from __future__ import annotations

import pytest

from celery_worker import tasks
from celery_worker.celery import app

pytestmark = pytest.mark.django_db

ENTRIES = {
    "requeue-stalled-training": "lethe.requeue_stalled_training",
    "sweep-erasures": "lethe.sweep_erasures",
    "schedule-retraining": "lethe.schedule_retraining",
    "audit-checkpoint": "lethe.audit_checkpoint",
}


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections as it starts
def test_database_scheduler_installs_every_entry():
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    DatabaseScheduler(app=app)

    installed = dict(PeriodicTask.objects.values_list("name", "task"))
    assert {name: installed.get(name) for name in ENTRIES} == ENTRIES
    for task in ENTRIES.values():
        assert app.amqp.router.route({}, task)["queue"].name == "control"
        assert task in app.tasks


def test_sweeper_and_retraining_tasks_run_on_an_empty_database():
    assert tasks.sweep_erasures() == {"requeued": 0, "destroyed": 0}
    assert tasks.schedule_retraining() == []
    assert tasks.audit_checkpoint() is None  # an empty trail has no head to sign


def test_scheduled_checkpoint_signs_the_head_once():
    from django.db import transaction

    from governance.models import AuditCheckpoint
    from governance.services.audit import audit_event_append

    with transaction.atomic():
        event = audit_event_append(actor="test", action="x", object_type="t", object_id="1")
    assert tasks.audit_checkpoint() == event.seq
    assert tasks.audit_checkpoint() is None
    assert AuditCheckpoint.objects.get().reason == AuditCheckpoint.Reason.SCHEDULED
