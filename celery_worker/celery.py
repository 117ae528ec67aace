"""The stock Celery app, configured from Django settings (``CELERY_*`` names)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("lethe")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Tasks live in celery_worker/tasks.py rather than in a Django app, so name this package
# next to the installed apps. The lambda defers reading settings until the app finalises.
app.autodiscover_tasks(lambda: [*_installed_apps(), "celery_worker"])


def _installed_apps() -> list[str]:
    from django.conf import settings

    return list(settings.INSTALLED_APPS)
