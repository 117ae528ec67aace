#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
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
