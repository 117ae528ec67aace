"""Run a Celery worker for every Lethe queue, configured from settings.

With no ``CELERY_BROKER_URL`` this is the embedded default's background worker: it polls
the file-system queue in ``var/broker``. The solo pool runs one task at a time in this
process, which suits training (one model per core set) and avoids fork-after-torch hangs.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run a Celery worker for the training, control and default queues."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", default="training,control,default")
        parser.add_argument("--loglevel", default="info")
        parser.add_argument("--beat", action="store_true", help="also run the beat scheduler")

    def handle(self, *args: Any, **options: Any) -> None:
        from celery_worker.celery import app

        argv = [
            "worker",
            "--pool=solo",
            f"--queues={options['queues']}",
            f"--loglevel={options['loglevel']}",
            "--without-gossip",
            "--without-mingle",
        ]
        if options["beat"]:
            argv.append("--beat")
        app.worker_main(argv)
