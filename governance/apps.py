from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Lethe governance"
    default_auto_field = "django.db.models.BigAutoField"

    # No ready() hook: Celery workers fork after Django starts, and a model loaded in the
    # parent process hangs forked children once torch has started its threads (DESIGN §8).
