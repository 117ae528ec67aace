"""``manage.py demo``: train, erase, certify, then serve the UI and API (``make demo``).

The walkthrough itself lives in ``governance.demo``; this command parses options, checks
the port before minutes of training, and hands over to ``manage.py serve`` at the end.
``manage.py engine_demo`` is the engine-only demo (no database).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Train an S3T model on the sample data through the real services, erase the "
        "subject with the most records, print the certificate and predictions before and "
        "after, then serve the web UI and API with a background worker. A second run "
        "reuses the demo data; --reset starts over."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--quick",
            action="store_true",
            help="60 subjects and 2 sequences per shard: under a minute on 2 cores",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="delete the demo's SQLite database, artifacts, broker folder, signing key and "
            "credentials under var/ first (refused for PostgreSQL or paths outside var/)",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="stop after the walkthrough (tests, CI)"
        )
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", help="where to serve (default %(default)s)"
        )
        # For tests: a tiny random backbone that trains in seconds, and a private state folder.
        parser.add_argument("--backbone", default=None, help=argparse.SUPPRESS)
        parser.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
        parser.add_argument("--subjects", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        from governance.demo import DemoError, port_free, run_demo
        from unlearning.demo_config import DemoConfig

        config = DemoConfig.quick() if options["quick"] else DemoConfig()
        if options["backbone"]:
            config = replace(config, backbone=options["backbone"])
        if options["subjects"]:
            config = replace(config, subjects=options["subjects"])
        host, _, port = str(options["addrport"]).rpartition(":")
        if not port.isdigit():
            raise CommandError(f"--addrport {options['addrport']!r}: give HOST:PORT or PORT")
        host = host or "127.0.0.1"
        addrport = f"{host}:{port}"
        serve = not options["no_serve"]
        if serve and not port_free(addrport):
            raise CommandError(
                f"{addrport} is in use (another demo or server?); stop it, pass "
                "--addrport HOST:PORT, or --no-serve"
            )

        def serve_now(_: Any) -> None:
            if not serve:
                self.stdout.write(
                    "\nNot serving (--no-serve). Serve later with: .venv/bin/python manage.py serve"
                )
                return
            if not port_free(addrport):
                raise CommandError(f"{addrport} was taken while the demo ran; stop that server")
            self.stdout.write(
                f"\nServing the web UI and API on http://{addrport}/ with a background worker; "
                "Ctrl-C stops both.\n"
            )
            call_command("serve", addrport)

        try:
            run_demo(
                config=config,
                out=self.stdout,
                state_dir=options["state_dir"],
                reset=options["reset"],
                base_url=f"http://{addrport}/",
                before_unlock=serve_now,
            )
        except DemoError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            # Serving stops on Ctrl-C by itself (runserver exits 0); this is the walkthrough.
            self.stderr.write("\nInterrupted. Run the demo again: it resumes where it stopped.")
            raise SystemExit(130) from None
