from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from governance.errors import ApplicationError
from governance.permissions import Role
from governance.services.accounts import user_create_with_role


class Command(BaseCommand):
    help = (
        "Create a user with a role and print a new API token. The token is the last line on "
        "stdout, alone, so scripts can capture it: TOKEN=$(manage.py lethe_user ... )."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help=f"one of: {', '.join(Role)}")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user, key = user_create_with_role(
                username=options["username"],
                role=options["role"],
                email=options["email"],
                actor="manage.py lethe_user",
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        # Human-readable notes go to stderr so that stdout holds only the token.
        self.stderr.write(
            f"Created user {user.username!r} with role {options['role']}. "
            "The token below is shown only once; store it now.",
            style_func=self.style.SUCCESS,
        )
        self.stdout.write(key)
