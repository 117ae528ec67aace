"""A real Celery worker process against the real broker and database.

CI runs this twice: with ``CELERY_BROKER_URL`` pointing at Redis and PostgreSQL as the
database, and with neither set, where the worker uses the embedded file-system queue and
the SQLite file. The test process talks to the API in-process; the worker is a separate
``python manage.py worker`` process that shares the database and the artifact folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.db import connection

from governance.models import SliceAssignment, Stage, TrainingJob, TrainingTask
from tests.personas import sample_rows
from unlearning.artifacts import load_artifact

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """``manage.py worker`` in a child process, with its log kept for failure messages."""

    def __init__(
        self,
        tmp_path: Path,
        lease_seconds: int = 600,
        *,
        queues: str | None = None,
        env: dict[str, str] | None = None,
        name: str = "worker",
    ) -> None:
        """``queues``: run one worker for these queues only (``--queues``); ``env``: extra
        variables, over the defaults (another machine's own folders, a shared store)."""
        self.name = name
        self.log_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
            "LETHE_BROKER_DIR": str(settings.LETHE_BROKER_DIR),
            "LETHE_SIGNING_KEY_PATH": str(settings.LETHE_SIGNING_KEY_PATH),
            "LETHE_STAGE_LEASE_SECONDS": str(lease_seconds),
            "LETHE_TORCH_THREADS": "2",
            **(env or {}),
        }
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "worker",
                "--loglevel=info",
                *([f"--queues={queues}"] if queues else []),
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the training and control workers
        )

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def ready(self) -> bool:
        """Celery logs "<name> ready." after its ``worker_ready`` hooks ran (the re-queue
        of unfinished training): from then on it consumes."""
        return " ready." in self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL both worker processes at once, as a machine crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):  # the control worker, if orphaned
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def _wait(predicate, worker: Worker, timeout: float = 300, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited while waiting for {what}:\n{worker.log()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{worker.log()}")


def _create_model(engineer, integration, sample, name, **plan):
    dataset = integration.client.post(
        "/api/v1/datasets/",
        {"name": f"support-{name}", "labels": list(sample.labels)},
        format="json",
    )
    assert dataset.status_code == 201, dataset.json()
    ds = dataset.json()["id"]
    ingest = integration.client.post(
        f"/api/v1/datasets/{ds}/records/", sample_rows(sample.train), format="json"
    )
    assert ingest.status_code == 200, ingest.json()
    assert ingest.json()["created"] == len(sample.train)
    body = {
        "name": name,
        "dataset": ds,
        "base_model": "tiny-bert",
        "shards": 2,
        "slices": 3,
        "sequences": 2,
        "sequence_policy": "cyclic",
        "epochs": 1,
        "learning_rate": 0.01,
        "seed": 3,
        **plan,
    }
    created = engineer.client.post("/api/v1/models/", body, format="json")
    assert created.status_code == 201, created.json()
    return created.json()["id"]


def test_worker_trains_publishes_and_serves(engineer, integration, officer, sample, shared_dirs):
    model_id = _create_model(engineer, integration, sample, "served")
    worker = Worker(shared_dirs)
    try:
        started = engineer.client.post(f"/api/v1/models/{model_id}/train/")
        assert started.status_code == 202
        first = _wait(
            lambda: (
                (r := engineer.client.get(f"/api/v1/models/{model_id}/").json())["manifest_version"]
                and r
            ),
            worker,
            what="the first manifest",
        )
        _wait(
            lambda: TrainingJob.objects.get(model=model_id).status == "succeeded",
            worker,
            what="the whole job",
        )
    finally:
        worker.stop()
    detail = engineer.client.get(f"/api/v1/models/{model_id}/").json()
    assert first["progress"]["stages_total"] == 2 * 6  # (0,1,2), (2,0,1): nothing shared
    assert detail["progress"] | {"current_loss": None} == {
        "job": detail["progress"]["job"],
        "status": "succeeded",
        "stages_done": 12,
        "stages_total": 12,
        "current_loss": None,
        "error": None,
    }
    assert detail["manifest_version"] >= first["manifest_version"] >= 1
    assert [s["depth"] for s in detail["shards"]] == [3, 3]
    prediction = engineer.client.post(
        f"/api/v1/models/{model_id}/predict/",
        {"inputs": ["my parcel is lost", "refund my card"]},
        format="json",
    )
    assert prediction.status_code == 200, prediction.json()
    body = prediction.json()
    assert body["manifest_version"] == detail["manifest_version"]
    assert all(p["label"] in sample.labels for p in body["predictions"])
    subject = sample.train[0].subject_id
    lineage = officer.client.get(f"/api/v1/subjects/{subject}/lineage/").json()
    (entry,) = lineage["models"]
    for row in entry["records"]:
        a = SliceAssignment.objects.get(record__external_id=row["external_id"], model=model_id)
        assert (row["shard"], row["slice"]) == (a.slice.shard.index, a.slice.index)
        assert {s["id"] for s in row["stages"]} == set(
            Stage.objects.filter(slices=a.slice).values_list("pk", flat=True)
        )


def test_killed_worker_resumes_without_retraining(engineer, integration, sample, shared_dirs):
    # Slow enough stages (20 epochs) that the kill lands inside a sequence.
    reference = _create_model(engineer, integration, sample, "reference", epochs=20)
    crashed = _create_model(engineer, integration, sample, "crashed", epochs=20)
    worker = Worker(shared_dirs, lease_seconds=3)
    try:
        assert engineer.client.post(f"/api/v1/models/{crashed}/train/").status_code == 202

        def mid_sequence():
            trained = Stage.objects.filter(shard__model=crashed, state="trained").count()
            training = Stage.objects.filter(shard__model=crashed, state="training").exists()
            return trained >= 1 and training

        _wait(mid_sequence, worker, what="a stage in training after a finished one")
        worker.kill()
    finally:
        worker.stop()
    finished_before = {
        s.pk: (s.tensor_digest, s.trained_at)
        for s in Stage.objects.filter(shard__model=crashed, state="trained")
    }
    assert finished_before
    assert TrainingJob.objects.get(model=crashed).status == "running"
    time.sleep(3.5)  # let the dead worker's lease lapse

    worker = Worker(shared_dirs, lease_seconds=3)
    try:
        _wait(
            lambda: TrainingJob.objects.get(model=crashed).status == "succeeded",
            worker,
            what="the resumed job",
        )
        assert engineer.client.post(f"/api/v1/models/{reference}/train/").status_code == 202
        _wait(
            lambda: TrainingJob.objects.get(model=reference).status == "succeeded",
            worker,
            what="the uninterrupted job",
        )
    finally:
        worker.stop()
    for pk, (digest, trained_at) in finished_before.items():
        stage = Stage.objects.get(pk=pk)
        assert (stage.tensor_digest, stage.trained_at) == (digest, trained_at), "retrained"
    assert TrainingTask.objects.filter(job__model=crashed, attempts__gte=2).exists()
    for stage in Stage.objects.filter(shard__model=crashed).select_related("shard"):
        twin = Stage.objects.get(
            shard__model=reference, shard__index=stage.shard.index, prefix=stage.prefix
        )
        assert (stage.state, twin.state) == ("trained", "trained")
        a = load_artifact(Path(settings.ARTIFACT_ROOT) / stage.artifact_key).tensors
        b = load_artifact(Path(settings.ARTIFACT_ROOT) / twin.artifact_key).tensors
        assert a.keys() == b.keys()
        assert all(torch.equal(a[n], b[n]) for n in a), stage.prefix
