"""Suffix retraining carried out by a real worker process, queued by the beat task through
the real broker: after an erasure, the due shard keeps its clean stages (same bytes, never
trained again) and the worker trains only the stages whose prefix holds the erased slice."""

from __future__ import annotations

import pytest

from governance.models import (
    ErasureRequest,
    ServingManifest,
    SliceAssignment,
    Stage,
    TrainingJob,
    UnlearningModel,
)
from governance.services.replay import model_replay_verify
from tests.integration.test_worker import Worker, _create_model, _wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
API = "/api/v1"
ERASED_SHARD, ERASED_SLICE = 0, 2


def _stages(model_id: int, generation: int, shard: int) -> dict[str, Stage]:
    return {
        s.prefix: s
        for s in Stage.objects.filter(
            shard__model=model_id, shard__generation=generation, shard__index=shard
        )
    }


def _subject_in(model_id: int, shard: int, slice_index: int) -> str:
    return (
        SliceAssignment.objects.filter(
            model=model_id, generation=1, slice__shard__index=shard, slice__index=slice_index
        )
        .order_by("record__subject__external_ref")
        .values_list("record__subject__external_ref", flat=True)
        .first()
    )


def test_worker_retrains_only_the_stages_that_read_the_erased_slice(
    engineer, integration, officer, sample, shared_dirs
):
    from celery_worker.celery import app

    # Threshold 3 = the full depth: one erasure makes its shard due.
    model_id = _create_model(engineer, integration, sample, "suffix", retrain_threshold=3)
    worker = Worker(shared_dirs)
    try:
        assert engineer.client.post(f"{API}/models/{model_id}/train/").status_code == 202
        _wait(
            lambda: TrainingJob.objects.get(model=model_id).status == "succeeded",
            worker,
            what="the first training",
        )
        before = {i: _stages(model_id, 1, i) for i in (0, 1)}
        subject = _subject_in(model_id, ERASED_SHARD, ERASED_SLICE)
        filed = integration.client.post(
            f"{API}/erasure-requests/", {"subject_id": subject}, format="json"
        )
        assert filed.status_code == 201, filed.json()
        req = filed.json()["id"]
        assert officer.client.post(f"{API}/erasure-requests/{req}/approve/").status_code == 200
        _wait(
            lambda: ErasureRequest.objects.get(pk=req).status == "completed",
            worker,
            timeout=120,
            what="the erasure",
        )
        app.send_task("lethe.schedule_retraining")  # what beat sends
        retrain = _wait(
            lambda: TrainingJob.objects.filter(model=model_id, kind="retrain").first(),
            worker,
            timeout=60,
            what="the retrain to be queued",
        )
        _wait(
            lambda: TrainingJob.objects.get(pk=retrain.pk).status == "succeeded",
            worker,
            what="the retrain",
        )
    finally:
        worker.stop()

    retrain.refresh_from_db()
    assert (retrain.generation, retrain.retrained_shards, retrain.retrain_mode) == (
        2,
        [ERASED_SHARD],
        "suffix",
    )
    dirty = {p for p in before[ERASED_SHARD] if str(ERASED_SLICE) in p.split("-")}
    assert dirty
    assert dirty != set(before[ERASED_SHARD])  # some stages clean, some not
    assert retrain.stages_total == len(dirty)
    after = {i: _stages(model_id, 2, i) for i in (0, 1)}
    assert set(after[ERASED_SHARD]) == set(before[ERASED_SHARD])
    for prefix, stage in after[ERASED_SHARD].items():
        old = before[ERASED_SHARD][prefix]
        assert stage.state == "trained", prefix
        if prefix in dirty:  # trained again, on the slices' remaining records
            assert stage.trained_at > old.trained_at, prefix
        else:  # kept: the same bytes, not trained again
            assert (stage.tensor_digest, stage.trained_at) == (old.tensor_digest, old.trained_at)
    for prefix, stage in after[1].items():  # the clean shard carried over as it was
        assert stage.tensor_digest == before[1][prefix].tensor_digest, prefix
    # The erased records are in no slice of the new generation.
    assert not SliceAssignment.objects.filter(
        model=model_id, generation=2, record__subject__external_ref=subject
    ).exists()
    manifest = ServingManifest.objects.filter(model=model_id).order_by("-version").first()
    assert manifest.generation == 2
    assert sorted(e["depth"] for e in manifest.entries) == [3, 3]
    # I4: every serving stage, kept or retrained, equals an independent replay.
    report = model_replay_verify(actor="test", model=UnlearningModel.objects.get(pk=model_id))
    assert report.ok, report
