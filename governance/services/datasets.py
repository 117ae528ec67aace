"""Datasets and bulk record upsert (flow 1: ingest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.errors import ApplicationError
from governance.images import image_put, images_delete
from governance.models import Dataset, Record, SliceAssignment, Subject
from governance.services.audit import audit_event_append
from governance.services.record_rows import GENERATION, TASKS, ValidRow

MAX_LABELS = 1000
TRAINED_RECORD_CHANGED = (
    "external_id: this record has been placed in a model's training data and cannot change "
    "its subject, text or label (or prompt, response, messages or image); file an erasure "
    "request for it, then send the new content under a new external_id"
)


def dataset_create(
    *, actor: Any, name: str, labels: Sequence[str] = (), task: str = "classification"
) -> Dataset:
    """Create a dataset of one task with its ordered class labels (none for generation)."""
    name = name.strip()
    clean = [str(label).strip() for label in labels]
    if not name:
        raise ApplicationError(
            code="invalid", message="name: must not be empty", details={"name": ["required"]}
        )
    if task not in TASKS:
        raise ApplicationError(
            code="invalid",
            message=f"task: {task!r} is not one of {', '.join(TASKS)}",
            details={"task": ["choice"]},
        )
    if task == GENERATION:
        if clean:
            raise ApplicationError(
                code="invalid",
                message="labels: a generation dataset has no labels; leave them out",
                details={"labels": ["empty"]},
            )
    elif len(clean) < 2 or len(clean) > MAX_LABELS:
        raise ApplicationError(
            code="invalid",
            message=f"labels: give between 2 and {MAX_LABELS} labels",
            details={"labels": ["count"]},
        )
    if len(set(clean)) != len(clean) or not all(clean):
        raise ApplicationError(
            code="invalid",
            message="labels: must be distinct, non-empty strings",
            details={"labels": ["distinct"]},
        )
    with transaction.atomic():
        if Dataset.objects.filter(name=name).exists():
            raise ApplicationError(
                code="conflict",
                message=f"name: a dataset named {name!r} exists",
                details={"name": ["unique"]},
                status=409,
            )
        # The creator owns it: an integration account's scope starts with its own datasets.
        owner = actor if getattr(actor, "is_authenticated", False) else None
        dataset = Dataset.objects.create(name=name, labels=clean, owner=owner, task=task)
        audit_event_append(
            actor=actor,
            action="dataset.created",
            obj=dataset,
            payload={"name": name, "labels": clean, "task": task},
        )
    return dataset


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def records_upsert(*, actor: Any, dataset: Dataset, rows: Sequence[ValidRow]) -> UpsertResult:
    """Insert or update records by (dataset, external_id); invalid rows are reported.

    Valid rows are written in one transaction with one audit event; a row that names an
    erased record is rejected (erased data is never re-ingested silently). Re-sending the
    same batch changes nothing: the call is idempotent.

    A record that lineage has placed in a model's slice is immutable as trained: a row that
    would change its subject or content (text, label, response, messages, image) is
    rejected (``TRAINED_RECORD_CHANGED``), and the platform erases it first. Rewriting it in
    place would make lineage lie about what the stages learned: re-attributing a subject's
    records, then erasing that subject, would otherwise be certified as "no records found"
    while stages trained on them keep serving.

    Image bytes go to the artifact store under a fresh key per record before the rows are
    written; if the write fails, the objects this call stored are deleted again, and an
    image an update replaced is deleted once the update has committed.

    Args:
        actor: who sends the batch.
        dataset: the target dataset.
        rows: ``ValidRow`` objects from ``governance.services.record_rows.validate_rows``.
    """
    result = UpsertResult()
    if not rows:
        return result
    written: list[str] = []  # image objects stored by this call
    try:
        with transaction.atomic():
            replaced = _upsert(actor, dataset, rows, result, written)
            if replaced:
                transaction.on_commit(lambda: images_delete(replaced))
    except BaseException:
        # Nothing half-written: the rows did not commit, so their images go too.
        images_delete(written)
        raise
    return result


def _upsert(
    actor: Any,
    dataset: Dataset,
    rows: Sequence[ValidRow],
    result: UpsertResult,
    written: list[str],
) -> list[str]:
    """The upsert's transaction body; returns the image keys updated records let go."""
    existing = {
        r.external_id: r
        for r in Record.objects.filter(
            dataset=dataset, external_id__in=[row.external_id for row in rows]
        ).select_related("subject")
    }
    # Subjects only for rows that may be written: a rejected row leaves nothing behind.
    erased = {k for k, r in existing.items() if r.status == Record.Status.ERASED}
    trained = _placed_in_lineage(
        [r.pk for r in existing.values() if r.status == Record.Status.ACTIVE]
    )
    frozen = erased | {
        row.external_id
        for row in rows
        if (record := existing.get(row.external_id)) is not None
        and record.pk in trained
        and _content(record) != _row_content(row)
    }
    subjects = _subjects_for({row.subject_id for row in rows if row.external_id not in frozen})
    to_create, to_update, replaced = [], [], []
    now = timezone.now()
    for row in rows:
        record = existing.get(row.external_id)
        if record is None:
            record = Record(dataset=dataset, external_id=row.external_id)
            _fill(record, row, subjects[row.subject_id], dataset, written)
            to_create.append(record)
        elif record.status == Record.Status.ERASED:
            result.rejected.append(
                {
                    "index": row.index,
                    "field": "external_id",
                    "error": "external_id: this record was erased and cannot be re-ingested",
                }
            )
        elif _content(record) == _row_content(row):
            result.unchanged += 1
        elif row.external_id in frozen:
            result.rejected.append(
                {"index": row.index, "field": "external_id", "error": TRAINED_RECORD_CHANGED}
            )
        else:
            if record.image_key and record.image_digest != row.image_digest:
                replaced.append(record.image_key)
            _fill(record, row, subjects[row.subject_id], dataset, written)
            record.updated_at = now  # bulk_update skips auto_now
            to_update.append(record)
    Record.objects.bulk_create(to_create, batch_size=2000)
    Record.objects.bulk_update(
        to_update,
        [*CONTENT_FIELDS, "updated_at"],
        batch_size=2000,
    )
    result.created, result.updated = len(to_create), len(to_update)
    if to_create or to_update:
        audit_event_append(
            actor=actor,
            action="records.upserted",
            obj=dataset,
            payload={
                "created": result.created,
                "updated": result.updated,
                "rejected": len(result.rejected),
            },
        )
    return replaced


CONTENT_FIELDS = ("subject", "text", "label", "response", "messages", "image_key", "image_digest")


def _fill(
    record: Record, row: ValidRow, subject: Subject, dataset: Dataset, written: list[str]
) -> None:
    """Set a record's subject and content from a row; a new image is stored first."""
    if row.image is not None and row.image_digest != record.image_digest:
        record.image_key = image_put(
            dataset_id=dataset.pk, data=row.image, image_format=row.image_format
        )
        written.append(record.image_key)
    elif row.image is None:
        record.image_key = ""
    record.subject = subject
    record.text, record.label, record.response = row.text, row.label, row.response
    record.messages, record.image_digest = row.messages_json(), row.image_digest


def _content(record: Record) -> tuple[Any, ...]:
    return (
        record.subject.external_ref,
        record.text,
        record.label,
        record.response,
        record.messages,
        record.image_digest,
    )


def _row_content(row: ValidRow) -> tuple[Any, ...]:
    return (
        row.subject_id,
        row.text,
        row.label,
        row.response,
        row.messages_json(),
        row.image_digest,
    )


def _placed_in_lineage(record_ids: list[int]) -> set[int]:
    """The records some generation of some model has assigned to a slice (one query)."""
    if not record_ids:
        return set()
    return set(
        SliceAssignment.objects.filter(record_id__in=record_ids).values_list("record_id", flat=True)
    )


def _subjects_for(refs: set[str]) -> dict[str, Subject]:
    known = {s.external_ref: s for s in Subject.objects.filter(external_ref__in=refs)}
    missing = [Subject(external_ref=ref) for ref in refs - known.keys()]
    Subject.objects.bulk_create(missing, batch_size=2000, ignore_conflicts=True)
    if missing:
        known.update(
            {
                s.external_ref: s
                for s in Subject.objects.filter(external_ref__in=refs - known.keys())
            }
        )
    return known
