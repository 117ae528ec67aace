"""One command for the embedded default: migrate, start the background worker, serve.

The worker is a child process (``manage.py worker --beat``) polling the file-system queue,
or the configured broker when ``CELERY_BROKER_URL`` is set; the web server runs in this
process. Stopping the server (Ctrl-C) stops the worker too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from governance.apps import local_folders_create
from governance.cache_listener import cache_listener_start

REPO = Path(__file__).resolve().parents[3]


class Command(BaseCommand):
    help = "Migrate, then run the web UI/API and a background worker together."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="serve only")

    def handle(self, *args: Any, **options: Any) -> None:
        local_folders_create()  # on a fresh clone var/ does not exist yet
        call_command("migrate", interactive=False, verbosity=0)
        worker = None
        if not options["no_worker"]:
            argv = [
                *(sys.executable, "manage.py", "worker", "--beat", "--loglevel=warning"),
                # A SIGTERM or SIGKILL to this process skips the finally below; the worker
                # (and its control child and beat) then stop with it anyway.
                f"--parent-pid={os.getpid()}",
            ]
            worker = subprocess.Popen(argv, cwd=REPO)  # noqa: S603 (our own argv)
            self.stdout.write(f"background worker started (pid {worker.pid})")
        # This process serves predictions from its own stage cache: hear evictions.
        cache_listener_start()
        try:
            call_command("runserver", options["addrport"], use_reloader=False)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
