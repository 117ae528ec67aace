"""Run Celery workers for every Lethe queue, configured from settings.

With no ``CELERY_BROKER_URL`` this is the embedded default's background worker: it polls
the file-system queue in ``var/broker``. By default two worker processes run: this one
trains (solo pool: one model per core set, no fork after torch has run threads) and a
child serves the ``control``, ``webhooks`` and ``default`` queues, so an erasure is carried
out within seconds even while a training task runs for an hour. ``--queues`` runs one worker only.

The child is supervised (``celery_worker.supervision``): restarted when it dies, with
backoff, and this command exits non-zero when it cannot be kept up. It dies with this
process, even one killed by SIGKILL (``celery_worker.lifelines``), and so does the beat
it embeds with ``--beat``: no orphan keeps consuming or scheduling after its parent.

``--device cuda:N`` (or ``cpu``, ``cuda``, ``auto``) sets ``LETHE_DEVICE`` for this worker
and, passed on, its child: run one training worker per GPU, each with its own ``--device``.
The spec is checked at start-up: a worker asked for a GPU it cannot see refuses to start.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

REPO = Path(__file__).resolve().parents[3]


class Command(BaseCommand):
    help = "Run Celery workers for the training, control and default queues."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues", default=None, help="run one worker for these queues (comma-separated)"
        )
        parser.add_argument("--loglevel", default="info")
        parser.add_argument("--beat", action="store_true", help="also run the beat scheduler")
        parser.add_argument(
            "--parent-pid", type=int, default=None, help="exit when this process dies (internal)"
        )
        parser.add_argument(
            "--device",
            default=None,
            help="train and serve on this device: auto, cpu, cuda or cuda:N (sets LETHE_DEVICE; "
            "one training worker per GPU)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from celery_worker.celery import app
        from celery_worker.lifelines import die_with_parent
        from celery_worker.supervision import Supervisor

        if options["device"] is not None:
            _use_device(str(options["device"]))

        if options["parent_pid"] is not None:
            # serve's background worker and the supervised child never outlive their parent.
            die_with_parent(options["parent_pid"])
        if options["queues"] is not None:
            queues = str(options["queues"])
            # Named after its first queue: "training-PID@host", "control-PID@host".
            name = queues.split(",")[0].strip() or "worker"
            app.worker_main(_argv(queues, options["loglevel"], options["beat"], name=name))
            return
        control = [
            sys.executable,
            "manage.py",
            "worker",
            f"--loglevel={options['loglevel']}",
            f"--parent-pid={os.getpid()}",
            *(["--beat"] if options["beat"] else []),
            *([f"--device={options['device']}"] if options["device"] is not None else []),
            "--queues=control,webhooks,default",
        ]
        supervisor = Supervisor(
            control,
            cwd=REPO,
            max_restarts=settings.LETHE_WORKER_MAX_RESTARTS,
            window_s=settings.LETHE_WORKER_RESTART_WINDOW_S,
            # Cold shutdown of the training worker: its task is acknowledged late, so the
            # message goes back to the queue and the stage resumes from its last record.
            on_give_up=lambda: os.kill(os.getpid(), signal.SIGQUIT),
        )
        supervisor.start()
        try:
            app.worker_main(_argv("training", options["loglevel"], beat=False, name="training"))
        finally:
            supervisor.stop()
        if supervisor.failed:
            raise CommandError(
                f"the control worker died {settings.LETHE_WORKER_MAX_RESTARTS + 1} times in "
                f"{settings.LETHE_WORKER_RESTART_WINDOW_S} s; giving up",
                returncode=3,
            )


def _use_device(spec: str) -> None:
    """Check a device spec and make it this process's ``LETHE_DEVICE`` setting.

    Settings were read before this command ran, so the setting is updated here; the
    supervised child gets the same ``--device`` on its command line.
    """
    from unlearning.device import resolve_device

    try:
        resolve_device(spec)
    except ValueError as exc:
        raise CommandError(f"--device: {exc}") from None
    settings.LETHE_DEVICE = spec


def _argv(queues: str, loglevel: str, beat: bool, name: str = "control") -> list[str]:
    argv = [
        "worker",
        "--pool=solo",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
        f"--hostname={name}-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv.append("--beat")
    if loglevel.lower() in ("warning", "error", "critical"):
        # No start-up banner when only warnings were asked for (a global option of celery's).
        argv.insert(0, "--quiet")
    return argv
