"""``manage.py lethe_user``: create a user with a role, or set an existing user's password.

``lethe_user NAME --role ROLE`` creates the user and prints a new API token (the last line
on stdout, alone, so scripts can capture it). ``--password-stdin`` reads one line from
stdin as the password, never from the command line (where ``ps`` and shell history would
show it): with ``--role`` the new user gets it, without it an existing user's password is
replaced. Django's password validators decide what is acceptable.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from governance.errors import ApplicationError
from governance.permissions import Role
from governance.services.accounts import user_create_with_role, user_password_set

ACTOR = "manage.py lethe_user"


class Command(BaseCommand):
    # Tests pass ``stdin=`` to call_command in place of the process's stdin.
    stealth_options = ("stdin",)
    help = (
        "Create a user with a role and print a new API token (the last line on stdout, alone: "
        "TOKEN=$(manage.py lethe_user NAME --role ROLE)), or, with --password-stdin and no "
        "--role, set an existing user's password read from stdin."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", help=f"create the user in this role: {', '.join(Role)}")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = _password_from_stdin(options.get("stdin")) if options["password_stdin"] else None
        username = options["username"]
        try:
            if options["role"] is None:
                if password is None:
                    raise CommandError(
                        "Give --role to create a user, or --password-stdin to set the password "
                        f"of an existing user; roles: {', '.join(Role)}."
                    )
                self._password_set(username, password)
                return
            user, key = user_create_with_role(
                username=username,
                role=options["role"],
                email=options["email"],
                actor=ACTOR,
                password=password,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        # Human-readable notes go to stderr so that stdout holds only the token.
        with_password = " and a password" if password is not None else ""
        self.stderr.write(
            f"Created user {user.username!r} with role {options['role']}{with_password}. "
            "The token below is shown only once; store it now.",
            style_func=self.style.SUCCESS,
        )
        self.stdout.write(key)

    def _password_set(self, username: str, password: str) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}; give --role to create one.")
        user_password_set(actor=ACTOR, user=user, password=password)
        self.stderr.write(f"Password set for {username!r}.", style_func=self.style.SUCCESS)


def _password_from_stdin(stream: Any) -> str:
    """The first line of stdin without its line ending; an empty line is an error."""
    line = (stream or sys.stdin).readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CommandError("--password-stdin: stdin held no password (an empty first line).")
    return password
