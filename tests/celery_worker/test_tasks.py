from __future__ import annotations

import subprocess
import sys

import pytest
from celery.exceptions import Retry
from django.db import InterfaceError, OperationalError

from celery_worker import app
from celery_worker.tasks import execute_erasure, ping, train_sequence
from governance.services import erasure_execution, training_tasks
from governance.services.training_tasks import StageBusy


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


@pytest.fixture
def retry_calls(monkeypatch):
    """Record each task's retry(...) instead of sending the retry to a broker."""
    calls = []

    def fake_retry(task):
        def retry(**kwargs):
            calls.append((task.name, kwargs))
            return Retry()

        return retry

    for task in (train_sequence, execute_erasure):
        monkeypatch.setattr(task, "retry", fake_retry(task))
    return calls


def test_transient_database_errors_retry_with_capped_jittered_backoff(monkeypatch, retry_calls):
    monkeypatch.setattr(training_tasks, "training_task_run", _raise(OperationalError("gone")))
    monkeypatch.setattr(erasure_execution, "erasure_request_execute", _raise(InterfaceError()))

    for task, args in ((train_sequence, (1,)), (execute_erasure, (2,))):
        with pytest.raises(Retry):
            task(*args)

    (train_name, train_retry), (erasure_name, erasure_retry) = retry_calls
    assert (train_name, erasure_name) == ("lethe.train_sequence", "lethe.execute_erasure")
    assert isinstance(train_retry["exc"], OperationalError)
    assert 0 <= train_retry["countdown"] <= 5  # full jitter below the first backoff step
    assert 0 <= erasure_retry["countdown"] <= 2
    assert (train_sequence.max_retries, train_sequence.retry_backoff_max) == (8, 600)
    assert (execute_erasure.max_retries, execute_erasure.retry_backoff_max) == (5, 60)


def test_busy_stage_retries_after_a_fixed_wait_bounded_by_the_lease(
    monkeypatch, settings, retry_calls
):
    monkeypatch.setattr(training_tasks, "training_task_run", _raise(StageBusy("stage 3")))

    for lease, wait in ((600, 30), (10, 10)):
        settings.LETHE_STAGE_LEASE_SECONDS = lease
        with pytest.raises(Retry):
            train_sequence(1)
        assert retry_calls.pop()[1]["countdown"] == wait


def _raise(exc):
    def fail(**_):
        raise exc

    return fail
