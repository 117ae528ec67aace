from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "The engine-only demo (no database, no services): train an S3T model in memory on the "
        "sample data, erase a subject, show sequence depths and accuracy before and after."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--quick", action="store_true", help="smallest settings, for tests and CI"
        )

    def handle(self, *args: object, **options: object) -> None:
        # Imported here so that `manage.py check` and other commands never load torch.
        from unlearning.demo import main

        exit_code = main(["--quick"] if options["quick"] else [])
        if exit_code:
            raise CommandError(f"engine demo failed (exit status {exit_code})")
