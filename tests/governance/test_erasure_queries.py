"""The erasure path issues a constant number of SQL statements.

Filing, approval and the three execution phases are counted with Django's
``CaptureQueriesContext`` on two models of very different sizes: 2 shards x 2 slices with
one sequence, and 4 shards x 4 slices with 4 cyclic sequences and more records per subject
and per slice. The counts must be equal: no statement runs once per shard, stage, sequence
or record. The lineage is built row by row the way training leaves it (trained stages with
their bytes in the artifact store, finished tasks, a published manifest), without torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance import engine
from governance.certificates.claims import certificate_claims_check
from governance.certificates.keys import signing_key_register
from governance.models import (
    DeletionCertificate,
    ErasureRequest,
    Record,
    Sequence,
    Shard,
    Slice,
    SliceAssignment,
    Stage,
    Subject,
    TrainingJob,
    TrainingTask,
)
from governance.services import erasure, erasure_execution
from governance.services.datasets import records_upsert
from governance.services.record_rows import validate_rows
from governance.services.serving import manifest_refresh
from tests.factories import DatasetFactory, UnlearningModelFactory
from unlearning.artifacts import StageKey
from unlearning.training import stage_plan

SMALL = {"shards": 2, "slices": 2, "budget": 1, "subjects": 8, "per_subject": 1}
LARGE = {"shards": 4, "slices": 4, "budget": 4, "subjects": 48, "per_subject": 3}


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    return settings.ARTIFACT_ROOT


def build(
    tag: str, *, shards: int, slices: int, budget: int, subjects: int, per_subject: int
) -> str:
    """A trained model (generation 1, every stage trained, manifest v1); the subject to erase.

    Subject ``<tag>-s<i>`` holds ``per_subject`` records, all in one cell (shard i % m, slice
    (i // m) % L), as the partition places a subject's records together. Subject ``<tag>-s0``
    sits in shard 0, slice 0, which every cyclic sequence of shard 0 reads.
    """
    now = timezone.now()
    dataset = DatasetFactory()
    model = UnlearningModelFactory(
        dataset=dataset,
        name=tag,
        num_shards=shards,
        num_slices=slices,
        budget=budget,
        status="ready",
        generation=1,
    )
    job = TrainingJob.objects.create(model=model, generation=1, status="succeeded")
    store = engine.artifact_store(model, 1)
    cells: dict[tuple[int, int], Slice] = {}
    for m in range(shards):
        shard = Shard.objects.create(model=model, generation=1, index=m)
        for s in range(slices):
            cells[(m, s)] = Slice.objects.create(shard=shard, index=s)
        plan = engine.sequence_plan(model, m)
        for i, order in enumerate(plan):
            sequence = Sequence.objects.create(shard=shard, index=i, order=list(order))
            TrainingTask.objects.create(job=job, sequence=sequence, status="done", attempts=1)
        for prefix in stage_plan(plan):
            key = store.object_key(StageKey(m, tuple(prefix)))
            data = f"stage {m} {prefix}".encode()
            path = Path(settings.ARTIFACT_ROOT) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            stage = Stage.objects.create(
                shard=shard,
                prefix=engine.prefix_text(prefix),
                position=len(prefix),
                state=Stage.State.TRAINED,
                trained_at=now,
                artifact_key=key,
                tensor_digest="sha256:" + hashlib.sha256(data).hexdigest(),
            )
            stage.slices.set([cells[(m, s)] for s in prefix])
    for i in range(subjects):
        subject = Subject.objects.create(external_ref=f"{tag}-s{i}")
        cell = cells[(i % shards, (i // shards) % slices)]
        for n in range(per_subject):
            record = Record.objects.create(
                dataset=dataset, subject=subject, external_id=f"{tag}-r{i}-{n}", text="t", label="a"
            )
            SliceAssignment.objects.create(record=record, slice=cell, model=model, generation=1)
    assert manifest_refresh(model=model, reason="built") is not None
    return f"{tag}-s0"


def count_erasure(officer, subject_ref: str, capture) -> dict[str, int]:
    """Statements per step of one erasure (filing, approval, execution), executed inline."""
    counts = {}
    with CaptureQueriesContext(connection) as filing:
        request, _ = erasure.erasure_request_create(
            actor=officer.user, subject_ref=subject_ref, channel="email"
        )
    counts["file"] = len(filing)
    with CaptureQueriesContext(connection) as approval, capture(execute=False) as queued:
        erasure.erasure_request_approve(actor=officer.user, request=request)
    assert len(queued) == 1
    counts["approve"] = len(approval)
    with CaptureQueriesContext(connection) as execution:
        status = erasure_execution.erasure_request_execute(request_id=request.pk)
    assert status == ErasureRequest.Status.COMPLETED
    counts["execute"] = len(execution)
    envelope = DeletionCertificate.objects.get(request=request).envelope
    assert all(c["ok"] for c in certificate_claims_check(envelope))
    return counts


def test_statements_per_erasure_do_not_grow_with_the_model(
    officer, artifacts, django_capture_on_commit_callbacks
):
    signing_key_register()  # the key's first use inserts its row once; not per erasure
    small_ref = build("small", **SMALL)
    small = count_erasure(officer, small_ref, django_capture_on_commit_callbacks)
    stages_small = Stage.objects.filter(state=Stage.State.DESTROYED).count()
    large_ref = build("large", **LARGE)
    large = count_erasure(officer, large_ref, django_capture_on_commit_callbacks)
    stages_large = Stage.objects.filter(state=Stage.State.DESTROYED).count() - stages_small
    assert (stages_small, stages_large) == (2, 10)  # the sizes really differ
    assert large == small, (small, large)


# --- the approval's version stamp ------------------------------------------------------------


def file_and_approve(officer, subject_ref, capture, between=None):
    """File a request, run ``between()``, approve it; the preview at intake and after."""
    request, _ = erasure.erasure_request_create(
        actor=officer.user, subject_ref=subject_ref, channel="email"
    )
    filed = dict(request.impact)
    if between is not None:
        between()
    with capture(execute=False):
        request = erasure.erasure_request_approve(actor=officer.user, request=request)
    request.refresh_from_db()
    return filed, request.impact


def test_approval_keeps_the_preview_when_nothing_changed(
    officer, artifacts, django_capture_on_commit_callbacks
):
    ref = build("same", **SMALL)

    filed, approved = file_and_approve(officer, ref, django_capture_on_commit_callbacks)

    assert approved == filed  # not recomputed: the same computed_at
    assert approved["models"][0]["stages_to_deactivate"] == 2


def test_approval_recomputes_the_preview_after_an_audited_change(
    officer, artifacts, django_capture_on_commit_callbacks
):
    ref = build("ingest", **SMALL)
    dataset = Record.objects.filter(subject__external_ref=ref).first().dataset

    def ingest_one_more():
        rows, errors = validate_rows(
            [{"external_id": "late", "subject_id": ref, "text": "t", "label": "a"}],
            labels=dataset.labels,
            max_rows=10,
        )
        assert not errors
        records_upsert(actor="tester", dataset=dataset, rows=rows)

    filed, approved = file_and_approve(
        officer, ref, django_capture_on_commit_callbacks, between=ingest_one_more
    )

    assert (filed["records_found"], approved["records_found"]) == (1, 2)
    assert approved["computed_at"] != filed["computed_at"]


def test_approval_recomputes_the_preview_after_an_unaudited_stage_change(
    officer, artifacts, django_capture_on_commit_callbacks
):
    """A worker that finds its stage's lineage erased deactivates it without an audit event
    of its own; the stamp's stage counts still see it."""
    ref = build("worker", **SMALL)
    doomed = Stage.objects.filter(slices__assignments__record__subject__external_ref=ref)

    def deactivate_one():
        Stage.objects.filter(pk=doomed.order_by("-position").first().pk).update(
            state=Stage.State.DEACTIVATED
        )

    filed, approved = file_and_approve(
        officer, ref, django_capture_on_commit_callbacks, between=deactivate_one
    )

    stages = [m["stages_to_deactivate"] for m in (filed["models"][0], approved["models"][0])]
    assert stages == [2, 1]
