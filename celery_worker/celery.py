"""The stock Celery app, configured from Django settings (``CELERY_*`` names)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready
from kombu.entity import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("lethe")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Declared, so a worker consumes them and `purge` reaches them: training (long, one at a
# time per GPU or core set), control (erasures, sweeps: short and urgent), default.
app.conf.task_queues = [Queue(name) for name in ("training", "control", "default")]  # type: ignore[no-untyped-call]
# Beat runs django-celery-beat's DatabaseScheduler (settings.CELERY_BEAT_SCHEDULER): these
# entries are written to its tables at start-up, where an operator can change intervals
# or pause them in the admin. Sweepers re-queue training that stopped making progress and
# erasures left in approved/executing; retraining replaces shards that serve too shallow.
app.conf.beat_schedule = {
    "requeue-stalled-training": {
        "task": "lethe.requeue_stalled_training",
        "schedule": 300.0,
    },
    "sweep-erasures": {"task": "lethe.sweep_erasures", "schedule": 60.0},
    "schedule-retraining": {
        "task": "lethe.schedule_retraining",
        "schedule": float(os.environ.get("LETHE_RETRAIN_INTERVAL_S", "3600")),
    },
}
app.conf.task_routes = {
    "lethe.train_sequence": {"queue": "training"},
    "lethe.requeue_stalled_training": {"queue": "control"},
    "lethe.execute_erasure": {"queue": "control"},
    "lethe.sweep_erasures": {"queue": "control"},
    "lethe.schedule_retraining": {"queue": "control"},
}
# Tasks live in celery_worker/tasks.py rather than in a Django app, so name this package
# next to the installed apps. The lambda defers reading settings until the app finalises.
app.autodiscover_tasks(lambda: [*_installed_apps(), "celery_worker"])


def _installed_apps() -> list[str]:
    from django.conf import settings

    return list(settings.INSTALLED_APPS)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _resume_unfinished(**_: object) -> None:
    """After a crash or restart, queue unfinished work again (duplicates are no-ops)."""
    from datetime import timedelta

    from governance.services.erasure_execution import erasure_requests_stuck
    from governance.services.training_tasks import training_requeue_stalled

    training_requeue_stalled()
    erasure_requests_stuck(older_than=timedelta(0))
