#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys

# The embedded entry points, for one person on their own machine: they run with DEBUG on
# unless DEBUG says otherwise. Everything else (gunicorn, workers, tests) runs with it off.
EMBEDDED_COMMANDS = frozenset({"demo", "serve", "runserver"})


def debug_default(argv: list[str]) -> None:
    """DEBUG=true for the embedded commands, unless DEBUG is set; before settings load,
    since they read DEBUG once."""
    if argv[1:2] and argv[1] in EMBEDDED_COMMANDS:
        os.environ.setdefault("DEBUG", "true")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    debug_default(sys.argv)
    import django
    from django.core.management import execute_from_command_line

    django.setup()
    # The embedded default's folders (SQLite's under var/, the file-system broker's) exist
    # before any command opens them, so `manage.py migrate` works on a fresh clone too.
    from governance.apps import local_folders_create

    local_folders_create()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
