"""Run Celery workers for every Lethe queue, configured from settings.

With no ``CELERY_BROKER_URL`` this is the embedded default's background worker: it polls
the file-system queue in ``var/broker``. By default two worker processes run: this one
trains (solo pool: one model per core set, no fork after torch has run threads) and a
child serves the ``control`` and ``default`` queues, so an erasure is carried out within
seconds even while a training task runs for an hour. ``--queues`` runs one worker only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

REPO = Path(__file__).resolve().parents[3]


class Command(BaseCommand):
    help = "Run Celery workers for the training, control and default queues."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues", default=None, help="run one worker for these queues (comma-separated)"
        )
        parser.add_argument("--loglevel", default="info")
        parser.add_argument("--beat", action="store_true", help="also run the beat scheduler")

    def handle(self, *args: Any, **options: Any) -> None:
        from celery_worker.celery import app

        if options["queues"] is not None:
            app.worker_main(_argv(options["queues"], options["loglevel"], options["beat"]))
            return
        control = [
            sys.executable,
            "manage.py",
            "worker",
            "--queues=control,default",
            f"--loglevel={options['loglevel']}",
        ]
        if options["beat"]:
            control.append("--beat")
        child = subprocess.Popen(control, cwd=REPO)  # noqa: S603 (our manage.py, fixed argv)
        try:
            app.worker_main(_argv("training", options["loglevel"], beat=False, name="training"))
        finally:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


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
    return argv
