from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the Lethe demo: train an S3T model on CPU, erase a subject, show the effect."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--quick", action="store_true", help="smallest settings, for tests and CI"
        )

    def handle(self, *args: object, **options: object) -> None:
        # Imported here so that `manage.py check` and other commands never load torch.
        from unlearning.demo import main

        exit_code = main(["--quick"] if options["quick"] else [])
        if exit_code:
            raise CommandError(f"demo failed (exit status {exit_code})")
