"""WSGI entry point: ``gunicorn governance.wsgi`` (settings in ``gunicorn.conf.py``).

The embedded default's folders are made first, so a fresh clone serves on its SQLite file
(after ``manage.py migrate``) with nothing else set up. ``ChunkedBodies`` lets a
``Transfer-Encoding: chunked`` body reach Django, which reads only sized bodies
(``governance.web_security``).
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

_django = get_wsgi_application()

from governance.apps import local_folders_create  # noqa: E402 (needs the settings loaded)
from governance.web_security import ChunkedBodies  # noqa: E402 (needs the apps loaded)

local_folders_create()
application = ChunkedBodies(_django)
