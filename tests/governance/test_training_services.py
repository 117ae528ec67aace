"""Training orchestration through the services, tasks run inline (the worker tests run
the same services in a real Celery worker process)."""

from __future__ import annotations

import itertools

import pytest
import torch

from governance.errors import ApplicationError
from governance.models import (
    AuditEvent,
    Record,
    ServingManifest,
    SliceAssignment,
    Stage,
    TrainingJob,
    TrainingTask,
)
from governance.selectors.lineage import subject_lineage
from governance.selectors.models import model_detail
from governance.services.audit import event_hash
from governance.services.datasets import dataset_create, records_upsert
from governance.services.record_rows import validate_rows
from governance.services.serving import manifest_refresh, model_predict, predictors
from governance.services.training import ModelSpec, model_create, model_train
from governance.services.training_tasks import StageBusy, training_task_run
from tests.personas import sample_rows
from unlearning.artifacts import load_artifact
from unlearning.training import stage_plan


@pytest.fixture
def artifacts(tmp_path, settings):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def dataset(db, sample):
    ds = dataset_create(actor="test", name="support", labels=sample.labels)
    valid, errors = validate_rows(sample_rows(sample.train), labels=sample.labels, max_rows=10**6)
    assert not errors
    records_upsert(actor="test", dataset=ds, rows=valid)
    return ds


def _spec(dataset, **overrides):
    values = dict(
        name="tiny",
        dataset=dataset,
        base_model="tiny-bert",
        shards=2,
        slices=2,
        sequences=2,
        sequence_policy="cyclic",
        epochs=1,
        learning_rate=1e-2,
        batch_size=16,
        seed=5,
    )
    values.update(overrides)
    return ModelSpec(**values)


def _run_all(job):
    for task in TrainingTask.objects.filter(job=job).order_by("pk"):
        training_task_run(task_id=task.pk)


def test_train_writes_lineage_for_every_active_record(
    dataset, artifacts, django_capture_on_commit_callbacks
):
    model = model_create(actor="test", spec=_spec(dataset))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = model_train(actor="test", model=model)
    assert len(callbacks) == 1  # one enqueue of all (shard, sequence) tasks, after commit
    active = Record.objects.filter(dataset=dataset, status="active").count()
    assert SliceAssignment.objects.filter(model=model, generation=1).count() == active
    per_shard = len(stage_plan([(0, 1), (1, 0)]))
    assert job.stages_total == 2 * per_shard
    assert TrainingTask.objects.filter(job=job).count() == 4
    # subjects stay together: one slice per subject
    pairs = SliceAssignment.objects.filter(model=model).values_list("record__subject", "slice")
    by_subject = {}
    for subject, slice_id in pairs:
        by_subject.setdefault(subject, set()).add(slice_id)
    assert all(len(slices) == 1 for slices in by_subject.values())


def test_training_publishes_a_manifest_and_serves(dataset, artifacts):
    model = model_create(actor="test", spec=_spec(dataset))
    job = model_train(actor="test", model=model)
    tasks = list(TrainingTask.objects.filter(job=job).order_by("pk"))
    training_task_run(task_id=tasks[0].pk)
    assert not ServingManifest.objects.filter(model=model).exists()  # shard 1 cannot serve yet
    for task in tasks[1:]:
        training_task_run(task_id=task.pk)
    job.refresh_from_db()
    model.refresh_from_db()
    assert (job.status, job.stages_done, model.status) == ("succeeded", job.stages_total, "ready")
    manifest = ServingManifest.objects.get(model=model)
    assert [(e["shard"], e["sequence"], e["depth"]) for e in manifest.entries] == [
        (0, 0, 2),
        (1, 0, 2),
    ]
    for stage in Stage.objects.filter(shard__model=model):
        assert stage.state == "trained"
        assert load_artifact(artifacts / stage.artifact_key).digest == stage.tensor_digest
    result = model_predict(model=model, inputs=["my parcel never arrived", "refund please"])
    assert result.manifest_version == 1
    assert all(p.label in dataset.labels for p in result.predictions)
    assert all(abs(sum(p.scores.values()) - 1) < 1e-4 for p in result.predictions)


def test_a_finished_task_is_never_retrained(dataset, artifacts):
    model = model_create(actor="test", spec=_spec(dataset))
    job = model_train(actor="test", model=model)
    _run_all(job)
    before = {
        s.pk: (s.tensor_digest, s.trained_at) for s in Stage.objects.filter(shard__model=model)
    }
    TrainingTask.objects.filter(job=job).update(status="queued")  # a redelivered message
    _run_all(job)
    after = {
        s.pk: (s.tensor_digest, s.trained_at) for s in Stage.objects.filter(shard__model=model)
    }
    assert after == before
    assert TrainingJob.objects.get(pk=job.pk).stages_done == job.stages_total


def test_same_seed_and_data_give_the_same_tensors(dataset, artifacts):
    a = model_create(actor="test", spec=_spec(dataset, name="a"))
    b = model_create(actor="test", spec=_spec(dataset, name="b"))
    _run_all(model_train(actor="test", model=a))
    _run_all(model_train(actor="test", model=b))
    digests = {}
    for stage in Stage.objects.filter(shard__model__in=[a, b]).select_related("shard"):
        digests.setdefault((stage.shard.index, stage.prefix), set()).add(stage.tensor_digest)
    assert all(len(d) == 1 for d in digests.values())
    stage_a = Stage.objects.filter(shard__model=a).order_by("pk").first()
    stage_b = Stage.objects.get(
        shard__model=b, shard__index=stage_a.shard.index, prefix=stage_a.prefix
    )
    ta, tb = (
        load_artifact(artifacts / stage_a.artifact_key).tensors,
        load_artifact(artifacts / stage_b.artifact_key).tensors,
    )
    assert all(torch.equal(ta[n], tb[n]) for n in ta)


def test_leased_stage_makes_the_task_wait(dataset, artifacts):
    from django.utils import timezone

    model = model_create(actor="test", spec=_spec(dataset))
    job = model_train(actor="test", model=model)
    task = TrainingTask.objects.filter(job=job).order_by("pk").first()
    first = Stage.objects.get(shard=task.sequence.shard, prefix=str(task.sequence.order[0]))
    Stage.objects.filter(pk=first.pk).update(
        state="training", claimed_until=timezone.now() + timezone.timedelta(minutes=5)
    )
    with pytest.raises(StageBusy):
        training_task_run(task_id=task.pk)


def test_expired_lease_is_taken_over(dataset, artifacts):
    from django.utils import timezone

    model = model_create(actor="test", spec=_spec(dataset))
    job = model_train(actor="test", model=model)
    task = TrainingTask.objects.filter(job=job).order_by("pk").first()
    first = Stage.objects.get(shard=task.sequence.shard, prefix=str(task.sequence.order[0]))
    Stage.objects.filter(pk=first.pk).update(
        state="training", claimed_until=timezone.now() - timezone.timedelta(seconds=1)
    )
    training_task_run(task_id=task.pk)
    assert Stage.objects.get(pk=first.pk).state == "trained"


def test_stage_whose_record_was_erased_never_trains(dataset, artifacts):
    from django.utils import timezone

    model = model_create(actor="test", spec=_spec(dataset))
    job = model_train(actor="test", model=model)
    task = TrainingTask.objects.filter(job=job).order_by("pk").first()
    first = Stage.objects.get(shard=task.sequence.shard, prefix=str(task.sequence.order[0]))
    record = Record.objects.filter(assignments__slice__stages=first).first()
    Record.objects.filter(pk=record.pk).update(status="erased", erased_at=timezone.now(), text="")
    training_task_run(task_id=task.pk)
    later = Stage.objects.filter(shard=first.shard, prefix__startswith=first.prefix)
    assert Stage.objects.get(pk=first.pk).state == "deactivated"
    assert all(s.state != "trained" for s in later)
    assert not any((artifacts / s.artifact_key).is_file() for s in later if s.artifact_key)


def test_predictions_follow_new_manifest_versions(dataset, artifacts):
    model = model_create(actor="test", spec=_spec(dataset))
    _run_all(model_train(actor="test", model=model))
    first = model_predict(model=model, inputs=["where is my package"])
    cached = predictors.ensemble(model, ServingManifest.objects.get(model=model, version=1))
    assert predictors.ensemble(model, ServingManifest.objects.get(model=model, version=1)) is cached
    # drop shard 0's serving sequence head: the serving choice changes
    manifest = ServingManifest.objects.get(model=model, version=1)
    head = manifest.entries[0]["stages"][0]["id"]
    Stage.objects.filter(pk=head).update(state="deactivated")
    assert manifest_refresh(model=model, reason="test").version == 2
    second = model_predict(model=model, inputs=["where is my package"])
    assert (first.manifest_version, second.manifest_version) == (1, 2)
    assert (
        predictors.ensemble(model, ServingManifest.objects.get(model=model, version=2))
        is not cached
    )


def test_lineage_and_detail_after_training(dataset, artifacts, sample):
    model = model_create(actor="test", spec=_spec(dataset))
    _run_all(model_train(actor="test", model=model))
    subject = sample.train[0].subject_id
    lineage = subject_lineage(subject_ref=subject)
    assert {r["external_id"] for r in lineage["records"]} == {
        r.external_id for r in sample.train if r.subject_id == subject
    }
    (entry,) = lineage["models"]
    for row in entry["records"]:
        a = SliceAssignment.objects.get(record__external_id=row["external_id"], model=model)
        assert (row["shard"], row["slice"]) == (a.slice.shard.index, a.slice.index)
        expected = set(Stage.objects.filter(slices=a.slice).values_list("pk", flat=True))
        assert {s["id"] for s in row["stages"]} == expected
        assert any(s["serving"] for s in row["stages"])
    # a record registered after training is "not yet trained"
    valid, _ = validate_rows(
        [
            {
                "external_id": "late-1",
                "subject_id": subject,
                "text": "hello",
                "label": dataset.labels[0],
            }
        ],
        labels=dataset.labels,
        max_rows=10,
    )
    records_upsert(actor="test", dataset=dataset, rows=valid)
    assert subject_lineage(subject_ref=subject)["models"][0]["not_yet_trained"] == ["late-1"]
    detail = model_detail(model=model)
    assert [s["depth"] for s in detail["shards"]] == [2, 2]
    assert all(s["deletions_left"] > 0 for s in detail["shards"])


def test_audit_chain_links_every_training_event(dataset, artifacts):
    model = model_create(actor="test", spec=_spec(dataset))
    _run_all(model_train(actor="test", model=model))
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.hash == event_hash(e) for e in events)
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    actions = {e.action for e in events}
    assert {
        "model.created",
        "model.training_queued",
        "stage.trained",
        "manifest.published",
        "model.training_finished",
    } <= actions


def test_a_retrain_takes_over_only_when_every_shard_can_serve(dataset, artifacts):
    model = model_create(actor="test", spec=_spec(dataset))
    _run_all(model_train(actor="test", model=model))
    job = model_train(actor="test", model=model)  # generation 2
    tasks = list(TrainingTask.objects.filter(job=job).order_by("pk"))
    training_task_run(task_id=tasks[0].pk)  # shard 0 of generation 2 can serve, shard 1 not
    latest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    assert (latest.version, latest.generation) == (1, 1)
    assert model_predict(model=model, inputs=["refund"]).manifest_version == 1
    for task in tasks[1:]:
        training_task_run(task_id=task.pk)
    latest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    assert latest.generation == 2
    assert len(latest.entries) == 2
    assert model_predict(model=model, inputs=["refund"]).manifest_version == latest.version


def test_a_stage_file_swapped_on_disk_is_refused(dataset, artifacts):
    from governance.errors import ApplicationError
    from unlearning.artifacts import save_artifact

    model = model_create(actor="test", spec=_spec(dataset))
    _run_all(model_train(actor="test", model=model))
    manifest = ServingManifest.objects.get(model=model)
    stage = Stage.objects.get(pk=manifest.entries[0]["stages"][0]["id"])
    artifact = load_artifact(artifacts / stage.artifact_key)
    forged = {n: t + 1.0 for n, t in artifact.tensors.items()}
    save_artifact(
        type(artifact)(artifact.key, forged, artifact.recipe, artifact.metrics),
        artifacts / stage.artifact_key,
    )
    predictors.evict(model.pk)
    with pytest.raises(ApplicationError, match="digest"):
        model_predict(model=model, inputs=["refund"])


def test_fewer_subjects_than_cells_is_refused_before_training(engineer, integration, sample):
    """Six records of two subjects pass the record count for 2 x 2 cells, but a subject's
    records share one cell, so two cells would train on nothing."""
    from governance.models import Dataset, TrainingJob
    from governance.services.training import ModelSpec, model_create, model_train

    dataset = Dataset.objects.create(
        name="two-subjects", labels=list(sample.labels), owner=integration.user
    )
    rows = [
        {"external_id": f"r{i}", "subject_id": f"s{i % 2}", "text": f"text {i}",
         "label": sample.labels[0]}
        for i in range(6)
    ]  # fmt: skip
    response = integration.client.post(
        f"/api/v1/datasets/{dataset.pk}/records/", rows, format="json"
    )
    assert response.status_code == 200
    model = model_create(
        actor=engineer.user,
        spec=ModelSpec(
            name="m", dataset=dataset, base_model="tiny-bert", shards=2, slices=2,
            sequences=2, sequence_policy="cyclic",
        ),
    )  # fmt: skip
    with pytest.raises(ApplicationError, match="fill only 2 of 4"):
        model_train(actor=engineer.user, model=model)
    assert not TrainingJob.objects.exists()
