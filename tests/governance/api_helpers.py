"""Shared pieces of the v1 endpoint tests (test_api_*.py): URLs, the error shape, and a
dataset and a tiny model made through the API itself."""

from __future__ import annotations

from typing import Any

from governance.models import TrainingTask
from governance.services.training_tasks import training_task_run
from tests.personas import sample_rows

API = "/api/v1"
# The erasure register's columns (API and web exports), written out, not imported from
# governance.services.reports: a reordered or renamed column must fail the report tests.
REPORT_HEADER = [
    "request_id",
    "type",
    "subject_ref",
    "channel",
    "status",
    "received_at",
    "due_at",
    "extended_due_at",
    "completed_at",
    "outcome",
    "records_erased",
    "reviewer",
    "certificate_id",
    "days_to_complete",
    "extension_reason",
    "decision_note",
    "confirmations",
]
# What the four persona fixtures are called; tests take them with request.getfixturevalue.
PERSONAS = ("officer", "auditor", "integration", "engineer")


def error_of(response: Any, status: int, code: str, names: str | None = None) -> dict[str, Any]:
    """Assert the error shape and return its body; ``names``, when given, must open the
    message (the field the client has to fix, as ``field: ...``)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    if names is not None:
        assert error["message"].startswith(f"{names}: "), error["message"]
    return error


def create_dataset(client: Any, sample: Any, name: str = "support", records: Any = None) -> int:
    """A dataset with the sample's labels and, unless ``records`` is ``()``, its train split."""
    response = client.post(
        f"{API}/datasets/", {"name": name, "labels": list(sample.labels)}, format="json"
    )
    assert response.status_code == 201, response.content
    dataset_id = int(response.json()["id"])
    rows = sample_rows(sample.train if records is None else records)
    if rows:
        response = client.post(f"{API}/datasets/{dataset_id}/records/", rows, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["rejected"] == []
    return dataset_id


def tiny_model(dataset_id: int, **overrides: Any) -> dict[str, Any]:
    """A POST models/ body that trains in about a second on the sample's train split."""
    body: dict[str, Any] = {
        "name": "tiny",
        "dataset": dataset_id,
        "base_model": "tiny-bert",
        "shards": 2,
        "slices": 2,
        "sequences": 2,
        "sequence_policy": "cyclic",
        "lora": {"rank": 4, "alpha": 8},
        "epochs": 1,
        "learning_rate": 0.01,
        "seed": 3,
    }
    body.update(overrides)
    return body


def run_training_inline(job_id: int) -> None:
    """What the Celery workers would do for the job, in this process (point
    ``settings.ARTIFACT_ROOT`` at a temporary folder first)."""
    for task in TrainingTask.objects.filter(job_id=job_id).order_by("pk"):
        training_task_run(task_id=task.pk)


def train_tiny_model(engineer: Any, dataset_id: int, capture: Any, **overrides: Any) -> int:
    """Create ``tiny_model`` through the API, train it inline and return its id.

    ``capture`` is pytest-django's ``django_capture_on_commit_callbacks``: the queued
    Celery tasks are dropped, and this process runs them instead.
    """
    model_id = int(
        engineer.client.post(
            f"{API}/models/", tiny_model(dataset_id, **overrides), format="json"
        ).json()["id"]
    )
    with capture(execute=False):
        job = engineer.client.post(f"{API}/models/{model_id}/train/").json()["job"]
    run_training_inline(job)
    return model_id
