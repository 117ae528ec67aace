"""The stock Celery app, configured from Django settings (``CELERY_*`` names).

Tasks and the ``worker_ready`` hook live in celery_worker/tasks.py; the heartbeat and the
re-queue on every broker connection are bootsteps in celery_worker/steps.py. The hooks here
make the embedded file-system broker's folders when a worker starts or a task is sent:
kombu writes into them but does not create them, and settings create nothing at import.
An embedded beat (``worker --beat``) dies with its worker (celery_worker/lifelines.py).
"""

from __future__ import annotations

import functools
import os
import signal
from multiprocessing.util import register_after_fork

from celery import Celery
from celery.signals import before_task_publish, worker_init
from django.conf import settings
from kombu.entity import Queue

import celery_worker.control  # noqa: F401  (registers Lethe's remote-control commands)
from celery_worker.lifelines import die_with_parent
from celery_worker.steps import Heartbeat, ResumeOnConnect

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("lethe")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Declared, so a worker consumes them and `purge` reaches them: training (long, one at a
# time per GPU or core set), control (erasures, sweeps: short and urgent), webhooks (HTTP
# to other systems: a slow receiver never delays an erasure), default.
_QUEUES = ("training", "control", "webhooks", "default")
app.conf.task_queues = [Queue(name) for name in _QUEUES]  # type: ignore[no-untyped-call]
app.steps["worker"].add(Heartbeat)
app.steps["consumer"].add(ResumeOnConnect)
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
    "audit-checkpoint": {
        "task": "lethe.audit_checkpoint",
        "schedule": float(settings.LETHE_AUDIT_CHECKPOINT_INTERVAL_S),
    },
    "schedule-retraining": {
        "task": "lethe.schedule_retraining",
        "schedule": float(settings.LETHE_RETRAIN_INTERVAL_S),
    },
    # Webhook retries that are due, overdue-request events, confirmation reminders.
    "sweep-webhooks": {"task": "lethe.sweep_webhooks", "schedule": 15.0},
}
app.conf.task_routes = {
    "lethe.train_sequence": {"queue": "training"},
    "lethe.requeue_stalled_training": {"queue": "control"},
    "lethe.execute_erasure": {"queue": "control"},
    "lethe.sweep_erasures": {"queue": "control"},
    "lethe.audit_checkpoint": {"queue": "control"},
    "lethe.schedule_retraining": {"queue": "control"},
    "lethe.emit_openlineage": {"queue": "default"},
    "lethe.deliver_webhook": {"queue": "webhooks"},
    "lethe.sweep_webhooks": {"queue": "control"},
}
# Tasks live in celery_worker/tasks.py rather than in a Django app, so name this package
# next to the installed apps. The lambda defers reading settings until the app finalises.
app.autodiscover_tasks(lambda: [*_installed_apps(), "celery_worker"])


def _installed_apps() -> list[str]:
    return list(settings.INSTALLED_APPS)


@worker_init.connect  # type: ignore[untyped-decorator]
def _worker_folders(**_: object) -> None:
    """A worker reads the queue folder and may open the SQLite file: make their folders."""
    from governance.apps import local_folders_create

    local_folders_create()
    register_after_fork(app, functools.partial(_die_with_worker, worker_pid=os.getpid()))


def _die_with_worker(_: object, *, worker_pid: int) -> None:
    """In every process the worker forks (the embedded beat, prefork children), right after
    the fork: die with the worker. Without this a SIGKILLed worker leaves its beat running,
    and a restarted worker starts a second one (every sweep sent twice). It runs before the
    beat builds its scheduler, which may wait on the database. SIGKILL, not SIGTERM: the
    child inherits the worker's SIGTERM handler, which only flags the (absent) worker to
    stop; the beat's schedule state is in the database, so nothing is lost."""
    die_with_parent(worker_pid, sig=signal.SIGKILL)


@before_task_publish.connect  # type: ignore[untyped-decorator]
def _broker_folders(**_: object) -> None:
    """Sending writes a message file into the queue folder (a few stat calls when it exists)."""
    from governance.apps import broker_folders_create

    broker_folders_create()
