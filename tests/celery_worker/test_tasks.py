from __future__ import annotations

import subprocess
import sys

from celery_worker import app
from celery_worker.tasks import ping


def test_app_reads_json_only_settings_from_django():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"


def test_worker_startup_discovers_tasks_module():
    # A fresh interpreter: this test module has already imported the tasks itself.
    code = (
        "from celery_worker import app; app.loader.import_default_modules(); "
        "print('lethe.ping' in app.tasks)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "True"


def test_ping_runs_in_process():
    assert ping.apply().get(timeout=5) == "pong"
