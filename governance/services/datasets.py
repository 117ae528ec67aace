"""Datasets and bulk record upsert (flow 1: ingest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.errors import ApplicationError
from governance.models import Dataset, Record, SliceAssignment, Subject
from governance.services.audit import audit_event_append

MAX_LABELS = 1000
TRAINED_RECORD_CHANGED = (
    "external_id: this record has been placed in a model's training data and cannot change "
    "its subject, text or label; file an erasure request for it, then send the new content "
    "under a new external_id"
)


def dataset_create(*, actor: Any, name: str, labels: Sequence[str]) -> Dataset:
    """Create a dataset with its ordered class labels."""
    name = name.strip()
    clean = [str(label).strip() for label in labels]
    if not name:
        raise ApplicationError(
            code="invalid", message="name: must not be empty", details={"name": ["required"]}
        )
    if len(clean) < 2 or len(clean) > MAX_LABELS:
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
        dataset = Dataset.objects.create(name=name, labels=clean, owner=owner)
        audit_event_append(
            actor=actor,
            action="dataset.created",
            obj=dataset,
            payload={"name": name, "labels": clean},
        )
    return dataset


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def records_upsert(*, actor: Any, dataset: Dataset, rows: Sequence[Any]) -> UpsertResult:
    """Insert or update records by (dataset, external_id); invalid rows are reported.

    Valid rows are written in one transaction with one audit event; a row that names an
    erased record is rejected (erased data is never re-ingested silently). Re-sending the
    same batch changes nothing: the call is idempotent.

    A record that lineage has placed in a model's slice is immutable as trained: a row that
    would change its subject, text or label is rejected (``TRAINED_RECORD_CHANGED``), and
    the platform erases it first. Rewriting it in place would make lineage lie about what
    the stages learned: re-attributing a subject's records, then erasing that subject, would
    otherwise be certified as "no records found" while stages trained on them keep serving.

    Args:
        actor: who sends the batch.
        dataset: the target dataset.
        rows: ``ValidRow`` objects from ``governance.services.record_rows.validate_rows``.
    """
    result = UpsertResult()
    if not rows:
        return result
    with transaction.atomic():
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
            and _content(record) != (row.subject_id, row.text, row.label)
        }
        subjects = _subjects_for({row.subject_id for row in rows if row.external_id not in frozen})
        to_create, to_update = [], []
        now = timezone.now()
        for row in rows:
            record = existing.get(row.external_id)
            if record is None:
                to_create.append(
                    Record(
                        dataset=dataset,
                        subject=subjects[row.subject_id],
                        external_id=row.external_id,
                        text=row.text,
                        label=row.label,
                    )
                )
            elif record.status == Record.Status.ERASED:
                result.rejected.append(
                    {
                        "index": row.index,
                        "field": "external_id",
                        "error": "external_id: this record was erased and cannot be re-ingested",
                    }
                )
            elif _content(record) == (row.subject_id, row.text, row.label):
                result.unchanged += 1
            elif row.external_id in frozen:
                result.rejected.append(
                    {"index": row.index, "field": "external_id", "error": TRAINED_RECORD_CHANGED}
                )
            else:
                record.subject, record.text, record.label = (
                    subjects[row.subject_id],
                    row.text,
                    row.label,
                )
                record.updated_at = now  # bulk_update skips auto_now
                to_update.append(record)
        Record.objects.bulk_create(to_create, batch_size=2000)
        Record.objects.bulk_update(
            to_update, ["subject", "text", "label", "updated_at"], batch_size=2000
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
    return result


def _content(record: Record) -> tuple[str, str, str]:
    return record.subject.external_ref, record.text, record.label


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
