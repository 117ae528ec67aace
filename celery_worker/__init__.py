"""Celery app and thin tasks; start a worker with ``celery -A celery_worker worker -l info``."""

from __future__ import annotations

from celery_worker.celery import app

__all__ = ["app"]
