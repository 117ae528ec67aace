"""Erasures carried out by a real worker process (control queue) on the real broker and
database: the flow of DESIGN §5.3 end to end, and recovery after a worker dies mid-way."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from governance.certificates.claims import certificate_claims_check
from governance.certificates.signing import certificate_verify
from governance.models import ErasureRequest, Record, ServingManifest, Stage, TrainingJob
from governance.services import erasure_execution
from tests.integration.test_worker import Worker, _create_model, _wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
API = "/api/v1"


def _train(engineer, model_id, worker):
    assert engineer.client.post(f"{API}/models/{model_id}/train/").status_code == 202
    _wait(
        lambda: TrainingJob.objects.get(model=model_id).status == "succeeded",
        worker,
        what="training",
    )


def _subject_in(model_id):
    stage = Stage.objects.filter(shard__model=model_id, position=1).order_by("pk").first()
    return (
        Record.objects.filter(assignments__slice__in=stage.slices.all())
        .values_list("subject__external_ref", flat=True)
        .first()
    )


def _serving_lineage_is_clean(model_id):
    manifest = ServingManifest.objects.filter(model=model_id).order_by("-version").first()
    for entry in manifest.entries:
        for claimed in entry["stages"]:
            lineage = Record.objects.filter(assignments__slice__stages=claimed["id"])
            assert lineage.exists()
            assert not lineage.filter(status="erased").exists(), claimed
    return manifest


def test_worker_executes_an_erasure_and_certifies_it(
    engineer, integration, officer, auditor, sample, shared_dirs
):
    model_id = _create_model(engineer, integration, sample, "erasable")
    worker = Worker(shared_dirs)
    try:
        _train(engineer, model_id, worker)
        subject = _subject_in(model_id)
        doomed = list(
            Stage.objects.filter(slices__assignments__record__subject__external_ref=subject)
            .distinct()
            .values_list("pk", "artifact_key")
        )
        assert doomed
        assert all((Path(settings.ARTIFACT_ROOT) / p).is_file() for _, p in doomed)
        before = ServingManifest.objects.filter(model=model_id).order_by("-version")[0].version
        filed = integration.client.post(
            f"{API}/erasure-requests/",
            {"subject_id": subject, "reason": "Art. 17"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="it-1",
        )
        assert filed.status_code == 201, filed.json()
        req = filed.json()["id"]
        approved = officer.client.post(f"{API}/erasure-requests/{req}/approve/", {}, format="json")
        assert approved.status_code == 200, approved.json()
        _wait(
            lambda: ErasureRequest.objects.get(pk=req).status == "completed",
            worker,
            timeout=120,
            what="the erasure to complete",
        )
        predicted = integration.client.post(
            f"{API}/models/{model_id}/predict/", {"inputs": ["where is my parcel"]}, format="json"
        )
    finally:
        worker.stop()
    envelope = auditor.client.get(f"{API}/erasure-requests/{req}/certificate/").json()
    public = auditor.client.get(f"{API}/certificates/public-key/").json()
    assert certificate_verify(envelope, public_key_pem=public["public_key_pem"]).ok
    assert all(c["ok"] for c in certificate_claims_check(envelope))
    manifest = _serving_lineage_is_clean(model_id)
    assert manifest.version > before
    assert {s for s, _ in doomed} == {
        s["id"] for m in envelope["certificate"]["models"] for s in m["stages_deactivated"]
    }
    assert set(
        Stage.objects.filter(pk__in=[s for s, _ in doomed]).values_list("state", flat=True)
    ) == {"destroyed"}
    assert not any((Path(settings.ARTIFACT_ROOT) / p).exists() for _, p in doomed)
    assert predicted.status_code == 200, predicted.json()
    assert predicted.json()["manifest_version"] == manifest.version


def test_requests_survive_a_dead_worker(engineer, integration, officer, sample, shared_dirs):
    """I6: one request approved while no worker runs (its message waits on the broker), one
    whose worker died right after phase 1 with its message lost; a new worker finishes both."""
    model_id = _create_model(engineer, integration, sample, "crashy")
    worker = Worker(shared_dirs)
    try:
        _train(engineer, model_id, worker)
    finally:
        worker.kill()
        worker.stop()
    subjects = list(
        Record.objects.filter(assignments__model=model_id)
        .values_list("subject__external_ref", flat=True)
        .distinct()
        .order_by("subject__external_ref")[:2]
    )
    ids = []
    for subject in subjects:
        filed = integration.client.post(
            f"{API}/erasure-requests/", {"subject_id": subject}, format="json"
        )
        ids.append(filed.json()["id"])
    # The first: phase 1 commits, then the "worker" dies and its message is lost.
    ErasureRequest.objects.filter(pk=ids[0]).update(status="approved")
    assert erasure_execution._deactivate(ids[0]).status == "executing"
    _serving_lineage_is_clean(model_id)  # already out of service before any purge
    # The second: approved through the API with no worker running.
    assert officer.client.post(f"{API}/erasure-requests/{ids[1]}/approve/").status_code == 200

    worker = Worker(shared_dirs)
    try:
        _wait(
            lambda: set(ErasureRequest.objects.values_list("status", flat=True)) == {"completed"},
            worker,
            timeout=120,
            what="both erasures to complete",
        )
    finally:
        worker.stop()
    assert not Stage.objects.filter(shard__model=model_id, state="deactivated").exists()
    _serving_lineage_is_clean(model_id)
