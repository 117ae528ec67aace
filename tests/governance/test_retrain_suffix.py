"""Suffix retraining: a retrain keeps a due shard's slices and every stage whose lineage is
clean, and trains again exactly the stages whose prefix holds the slice an erasure hit.

Stages trained are counted through a spy on the engine's ``train_stage`` (what a worker
calls for every stage it trains); kept stages are compared byte for byte with the old
generation's files, and the retrained ones against an independent replay (I4).
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from governance.models import (
    AuditEvent,
    Record,
    ServingManifest,
    Shard,
    SliceAssignment,
    Stage,
    TrainingJob,
    TrainingTask,
)
from governance.services import erasure, erasure_execution
from governance.services.datasets import dataset_create, records_upsert
from governance.services.record_rows import validate_rows
from governance.services.replay import model_replay_verify
from governance.services.retraining import NEW_RECORDS_MAX_SHARE, model_retrain
from governance.services.training import ModelSpec, model_create, model_train
from governance.services.training_tasks import training_task_run
from tests.personas import sample_rows
from unlearning import training as engine_training
from unlearning.training import stage_plan

SLICES = 3


@pytest.fixture
def artifacts(tmp_path, settings):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    return settings.ARTIFACT_ROOT


def _model(sample, capture, *, slices: int, sequences: int):
    """A tiny model, 2 shards, cyclic sequences, trained inline."""
    dataset = dataset_create(actor="test", name="support", labels=sample.labels)
    valid, errors = validate_rows(sample_rows(sample.train), labels=sample.labels, max_rows=10**6)
    assert not errors
    records_upsert(actor="test", dataset=dataset, rows=valid)
    spec = ModelSpec(
        name="tiny",
        dataset=dataset,
        base_model="tiny-bert",
        shards=2,
        slices=slices,
        sequences=sequences,
        sequence_policy="cyclic",
        epochs=1,
        learning_rate=1e-2,
        batch_size=16,
        seed=5,
    )
    created = model_create(actor="test", spec=spec)
    with capture(execute=False):
        job = model_train(actor="test", model=created)
    _run(job)
    created.refresh_from_db()
    return created


@pytest.fixture
def model(db, sample, artifacts, django_capture_on_commit_callbacks):
    """L = 3, B = 3: 9 stages per shard, 6 of them read any one slice."""
    return _model(sample, django_capture_on_commit_callbacks, slices=SLICES, sequences=SLICES)


@pytest.fixture
def small(db, sample, artifacts, django_capture_on_commit_callbacks):
    """L = 2, B = 1: stages "0" and "0-1" per shard."""
    return _model(sample, django_capture_on_commit_callbacks, slices=2, sequences=1)


def _run(job: TrainingJob) -> None:
    for task_id in TrainingTask.objects.filter(job=job).order_by("pk").values_list("pk", flat=True):
        training_task_run(task_id=task_id)


def _erase_cell(model, capture, shard: int, slice_index: int) -> str:
    """Erase one subject whose records lie in (shard, slice) of the serving generation."""
    subject = (
        SliceAssignment.objects.filter(
            model=model,
            generation=model.generation,
            slice__shard__index=shard,
            slice__index=slice_index,
        )
        .order_by("record__subject__external_ref")
        .values_list("record__subject__external_ref", flat=True)
        .first()
    )
    request, created = erasure.erasure_request_create(
        actor="officer", subject_ref=subject, reason="Art. 17"
    )
    assert created
    with capture(execute=False):
        erasure.erasure_request_approve(actor="officer", request=request)
    assert erasure_execution.erasure_request_execute(request_id=request.pk) == "completed"
    return subject


def _stages(model, generation: int, shard: int) -> dict[str, Stage]:
    return {
        s.prefix: s
        for s in Stage.objects.filter(
            shard__model=model, shard__generation=generation, shard__index=shard
        )
    }


def _retrain(model, capture, **kwargs) -> TrainingJob:
    with capture(execute=False):
        job = model_retrain(actor="engineer", model=model, reason="test", **kwargs)
    assert job is not None
    return job


def _trained_prefixes(job: TrainingJob) -> list[tuple[int, tuple[int, ...]]]:
    """Run the job's tasks; the (shard, prefix) of every stage the engine trained."""
    spy = mock.patch.object(
        engine_training, "train_stage", wraps=engine_training.train_stage
    ).start()
    try:
        _run(job)
    finally:
        mock.patch.stopall()
    return sorted((c.kwargs["key"].shard, c.kwargs["key"].prefix) for c in spy.call_args_list)


def _text(prefix: tuple[int, ...]) -> str:
    return "-".join(map(str, prefix))


def _orders(model, generation: int, shard: int) -> list[tuple[int, ...]]:
    shard_row = Shard.objects.get(model=model, generation=generation, index=shard)
    return [tuple(o) for o in shard_row.sequences.order_by("index").values_list("order", flat=True)]


def _suffix_retrain_after_erasing(model, artifacts, capture, shard: int, hit: int) -> None:
    """Erase a subject of (shard, hit), retrain that shard; check what was kept and trained."""
    model.refresh_from_db()
    old_generation = model.generation
    before = _stages(model, old_generation, shard)
    other = _stages(model, old_generation, 1 - shard)
    old_files = {p: (Path(artifacts) / s.artifact_key).read_bytes() for p, s in before.items()}
    dirty = {_text(p) for p in stage_plan(_orders(model, old_generation, shard)) if hit in p}
    erased = _erase_cell(model, capture, shard, hit)
    lost = {p for p, s in _stages(model, old_generation, shard).items() if s.state != "trained"}
    assert lost == dirty

    job = _retrain(model, capture, shards=[shard])

    assert (job.retrain_mode, job.retrained_shards) == ("suffix", [shard])
    assert job.stages_total == len(dirty) == 6
    new = _stages(model, job.generation, shard)
    assert set(new) == set(before)
    for prefix, stage in new.items():
        if prefix in dirty:
            assert (stage.state, stage.tensor_digest, stage.artifact_key) == ("pending", "", "")
            continue
        old = before[prefix]  # kept: same digests, same bytes under the new generation's key
        assert stage.state == "trained"
        assert (stage.tensor_digest, stage.lineage_digest) == (
            old.tensor_digest,
            old.lineage_digest,
        )
        assert stage.artifact_key != old.artifact_key
        assert (Path(artifacts) / stage.artifact_key).read_bytes() == old_files[prefix]
    # Lineage: the same slices minus the erased subject's records, nothing else.
    kept_records = set(
        SliceAssignment.objects.filter(
            model=model, generation=old_generation, slice__shard__index=shard
        )
        .exclude(record__subject__external_ref=erased)
        .values_list("record_id", "slice__index")
    )
    assert kept_records == set(
        SliceAssignment.objects.filter(
            model=model, generation=job.generation, slice__shard__index=shard
        ).values_list("record_id", "slice__index")
    )
    # Every full sequence holds every slice: each of the shard's sequences trains again.
    assert TrainingTask.objects.filter(job=job, status="queued").count() == SLICES

    trained = _trained_prefixes(job)

    assert trained == sorted((shard, tuple(int(x) for x in p.split("-"))) for p in dirty)
    assert len(trained) < len(before)  # 6 of 9; the other shard was carried, untouched
    job.refresh_from_db()
    assert (job.status, job.stages_done) == ("succeeded", len(dirty))
    after = _stages(model, job.generation, shard)
    assert all(s.state == "trained" for s in after.values())
    for prefix in set(before) - dirty:
        assert after[prefix].tensor_digest == before[prefix].tensor_digest
    assert {p: s.tensor_digest for p, s in _stages(model, job.generation, 1 - shard).items()} == {
        p: s.tensor_digest for p, s in other.items()
    }
    manifest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    assert manifest.generation == job.generation
    assert [e["depth"] for e in manifest.entries] == [SLICES, SLICES]
    for entry in manifest.entries:  # no serving stage read an erased record (I2)
        ids = [s["id"] for s in entry["stages"]]
        assert not Record.objects.filter(
            assignments__slice__stages__in=ids, status=Record.Status.ERASED
        ).exists()
    event = AuditEvent.objects.filter(action="model.retraining_queued").latest("seq")
    assert (event.payload["mode"], event.payload["stages_kept"]) == ("suffix", 3)


def test_retrain_trains_exactly_the_stages_whose_prefix_holds_the_erased_slice(
    model, artifacts, django_capture_on_commit_callbacks
):
    """Slice 1 of shard 0, then slice 2 of shard 1 (whose stages generation 2 carried)."""
    _suffix_retrain_after_erasing(model, artifacts, django_capture_on_commit_callbacks, 0, 1)
    _suffix_retrain_after_erasing(model, artifacts, django_capture_on_commit_callbacks, 1, 2)
    report = model_replay_verify(actor="test", model=model)  # I4: kept and retrained stages
    assert report.ok, report
    assert len(report.stages) == 2 * SLICES


def test_full_mode_re_partitions_and_trains_every_stage(small, django_capture_on_commit_callbacks):
    _erase_cell(small, django_capture_on_commit_callbacks, 0, 1)
    job = _retrain(small, django_capture_on_commit_callbacks, shards=[0], mode="full")
    assert (job.retrain_mode, job.stages_total) == ("full", 2)
    assert _trained_prefixes(job) == [(0, (0,)), (0, (0, 1))]


def test_suffix_mode_on_the_same_erasure_trains_only_the_dirty_stage(
    small, django_capture_on_commit_callbacks
):
    _erase_cell(small, django_capture_on_commit_callbacks, 0, 1)
    job = _retrain(small, django_capture_on_commit_callbacks, shards=[0])
    assert (job.retrain_mode, job.stages_total) == ("suffix", 1)
    assert _trained_prefixes(job) == [(0, (0, 1))]


def _late_rows(model, count: int) -> None:
    labels = model.dataset.labels
    rows = [
        {"external_id": f"late-{i}", "subject_id": f"late-s{i}", "text": f"refund {i}",
         "label": labels[i % len(labels)]}
        for i in range(count)
    ]  # fmt: skip
    valid, errors = validate_rows(rows, labels=labels, max_rows=10**4)
    assert not errors
    records_upsert(actor="test", dataset=model.dataset, rows=valid)


def test_new_records_join_only_the_dirty_slices_of_the_due_shards(
    small, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _erase_cell(small, capture, 1, 1)
    _late_rows(small, 3)

    job = _retrain(small, capture, shards=[1])

    assert job.retrain_mode == "suffix"
    late = SliceAssignment.objects.filter(
        model=small, generation=job.generation, record__external_id__startswith="late-"
    )
    assert sorted(late.values_list("slice__shard__index", "slice__index")) == [(1, 1)] * 3
    assert _trained_prefixes(job) == [(1, (0, 1))]
    trained = Stage.objects.get(shard__model=small, shard__generation=job.generation, prefix="0-1",
                                shard__index=1)  # fmt: skip
    assert set(late.values_list("record_id", flat=True)) <= set(
        Record.objects.filter(assignments__slice__stages=trained).values_list("pk", flat=True)
    )


def test_too_many_waiting_records_fall_back_to_a_full_re_partition(
    small, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _erase_cell(small, capture, 0, 0)
    kept = SliceAssignment.objects.filter(
        model=small, generation=small.generation, slice__shard__index=0
    ).exclude(record__status=Record.Status.ERASED)
    _late_rows(small, int(NEW_RECORDS_MAX_SHARE * kept.count()) + 1)

    job = _retrain(small, capture, shards=[0])

    assert (job.retrain_mode, job.stages_total) == ("full", 2)


def test_a_clean_shard_asked_for_explicitly_is_retrained_in_full(
    small, django_capture_on_commit_callbacks
):
    """Nothing of it is dirty, so a suffix retrain would train nothing."""
    job = _retrain(small, django_capture_on_commit_callbacks, shards=[1])
    assert (job.retrain_mode, job.stages_total) == ("full", 2)


def test_an_unknown_mode_is_refused_naming_the_field(db):
    from governance.errors import ApplicationError
    from governance.models import UnlearningModel

    with pytest.raises(ApplicationError, match="mode: must be one of full, suffix"):
        model_retrain(actor="engineer", model=UnlearningModel(), reason="test", mode="partial")
