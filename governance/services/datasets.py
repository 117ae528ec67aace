"""Datasets and bulk record upsert (flow 1: ingest)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
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
    """The upsert's transaction body; returns the image keys updated records let go.

    One read finds the rows' stored records (with whether lineage placed each); the
    decisions are made here, for every backend; ``_write`` then writes the new and changed
    rows (COPY and two set-based statements on PostgreSQL, the ORM elsewhere).
    """
    stored = _stored(dataset, [row.external_id for row in rows])
    creates: list[_Write] = []
    updates: list[_Write] = []
    replaced: list[str] = []
    for row in rows:
        record = stored.get(row.external_id)
        if record is None:
            creates.append(_Write(row, _image_key(row, None, dataset, written)))
        elif record.status == Record.Status.ERASED:
            result.rejected.append(
                {
                    "index": row.index,
                    "field": "external_id",
                    "error": "external_id: this record was erased and cannot be re-ingested",
                }
            )
        elif record.content == _row_content(row):
            result.unchanged += 1
        elif record.trained:
            result.rejected.append(
                {"index": row.index, "field": "external_id", "error": TRAINED_RECORD_CHANGED}
            )
        else:
            if record.image_key and record.image_digest != row.image_digest:
                replaced.append(record.image_key)
            updates.append(_Write(row, _image_key(row, record, dataset, written), record.pk))
    if creates or updates:
        _write(dataset, creates, updates, timezone.now())
    result.created, result.updated = len(creates), len(updates)
    if creates or updates:
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


@dataclass(frozen=True)
class _Stored:
    """What the upsert needs to know of a stored record."""

    pk: int
    status: str
    content: tuple[Any, ...]  # as ``_row_content`` gives it for a row
    image_key: str
    image_digest: str
    trained: bool  # some generation of some model placed it in a slice


@dataclass(frozen=True)
class _Write:
    """A row to write, the image key its record will hold, and the record's id if stored."""

    row: ValidRow
    image_key: str
    pk: int | None = None


CONTENT_FIELDS = ("subject", "text", "label", "response", "messages", "image_key", "image_digest")
_STORED_FIELDS = ("pk", "status", "subject__external_ref", "text", "label", "response",
                  "messages", "image_digest", "image_key", "trained")  # fmt: skip


# One probe of the (dataset, external_id) unique index per id, whatever the planner thinks
# of the table: the LATERAL subquery with LIMIT cannot be flattened into a join, so it is
# never planned as a scan. A table loaded faster than autovacuum analyzes it has no
# statistics, and "dataset_id = 1" is then guessed to match 0.5% of it: at 1M records the
# plain ``external_id = ANY(...)`` read every record of the dataset (425 ms per batch of
# 5,000). The subject and the lineage check are correlated subqueries for the same reason:
# one probe of a unique index each, where a join may be planned as a hash of the table.
_STORED_SQL = (
    "SELECT r.external_id, r.id, r.status, "
    "(SELECT s.external_ref FROM governance_subject s WHERE s.id = r.subject_id), "
    "r.text, r.label, r.response, r.messages, r.image_digest, r.image_key, "
    "(SELECT 1 FROM governance_sliceassignment a WHERE a.record_id = r.id LIMIT 1) IS NOT NULL "
    "FROM unnest(%s::text[]) AS k(external_id) CROSS JOIN LATERAL ("
    "SELECT * FROM governance_record r WHERE r.dataset_id = %s "
    "AND r.external_id = k.external_id LIMIT 1) r"
)


def _stored(dataset: Dataset, external_ids: list[str]) -> dict[str, _Stored]:
    """The stored records of ``external_ids`` in ``dataset``, by external id (one query).

    Driven by the ``record_unique_id`` index; lineage is asked by EXISTS on the
    assignments' ``(record, model, generation)`` index. On PostgreSQL the ids go as one
    array parameter: 5,000 ``IN`` parameters cost more to build than the lookup takes.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Sorted: successive probes walk the index forward, each leaf page read once.
            cursor.execute(_STORED_SQL, [sorted(external_ids), dataset.pk])
            # Django reads jsonb as text (JSONField decodes it); column 7 is messages.
            found: Iterable[tuple[Any, ...]] = [
                (*r[:7], None if r[7] is None else json.loads(r[7]), *r[8:])
                for r in cursor.fetchall()
            ]
    else:
        placed = SliceAssignment.objects.filter(record_id=OuterRef("pk"))
        found = (
            Record.objects.filter(dataset=dataset, external_id__in=external_ids)
            .annotate(trained=Exists(placed))
            .values_list("external_id", *_STORED_FIELDS)
        )
    out = {}
    for external_id, pk, status, *content, key, trained in found:
        # content: ref, text, label, response, messages, digest (``_row_content``'s order)
        out[external_id] = _Stored(pk, status, tuple(content), key, content[-1], trained)
    return out


def _image_key(row: ValidRow, record: _Stored | None, dataset: Dataset, written: list[str]) -> str:
    """The image key the record will hold; a new image is stored first."""
    if row.image is None:
        return ""
    if record is not None and row.image_digest == record.image_digest:
        return record.image_key
    key = image_put(dataset_id=dataset.pk, data=row.image, image_format=row.image_format)
    written.append(key)
    return key


def _row_content(row: ValidRow) -> tuple[Any, ...]:
    return (
        row.subject_id,
        row.text,
        row.label,
        row.response,
        row.messages_json(),
        row.image_digest,
    )


def _write(dataset: Dataset, creates: list[_Write], updates: list[_Write], now: Any) -> None:
    """Create and update records (their subjects first); the one place rows are written."""
    if connection.vendor == "postgresql":
        _write_copy(dataset, creates, updates, now)
        return
    subjects = _subjects_for({w.row.subject_id for w in (*creates, *updates)})
    Record.objects.bulk_create(
        [
            _record(w, subjects, Record(dataset=dataset, external_id=w.row.external_id))
            for w in creates
        ],
        batch_size=2000,
    )
    Record.objects.bulk_update(
        [_record(w, subjects, Record(pk=w.pk, updated_at=now)) for w in updates],
        [*CONTENT_FIELDS, "updated_at"],
        batch_size=2000,
    )


def _record(w: _Write, subjects: dict[str, Subject], record: Record) -> Record:
    row = w.row
    record.subject = subjects[row.subject_id]
    record.text, record.label, record.response = row.text, row.label, row.response
    record.messages, record.image_digest = row.messages_json(), row.image_digest
    record.image_key = w.image_key
    return record


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


# --- PostgreSQL: COPY, and set-based statements driven by unique indexes ---------------

_CONTENT = ("text", "label", "response", "messages", "image_key", "image_digest")
# Changed rows wait here for their UPDATE: one per connection, emptied at every commit.
_STAGING = "lethe_ingest_updates"
_STAGING_DDL = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (record_id bigint PRIMARY KEY, "
    "subject_id bigint NOT NULL, text text NOT NULL, label text NOT NULL, "
    "response text NOT NULL, messages jsonb, image_key text NOT NULL, "
    "image_digest text NOT NULL) ON COMMIT DELETE ROWS"
)
_UPDATE = (
    "UPDATE governance_record r SET subject_id = t.subject_id, text = t.text, "
    "label = t.label, response = t.response, messages = t.messages, image_key = t.image_key, "
    "image_digest = t.image_digest, updated_at = %s "
    "FROM lethe_ingest_updates t WHERE r.id = t.record_id"
)


def _write_copy(dataset: Dataset, creates: list[_Write], updates: list[_Write], now: Any) -> None:
    """New records are COPYed straight into the record table; changed ones are COPYed into
    a temporary table and written by one UPDATE joined on the record's primary key."""
    subject_ids = _subject_ids_copy({w.row.subject_id for w in (*creates, *updates)}, now)
    record = Record._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        if creates:
            columns = ", ".join(("dataset_id", "subject_id", "external_id", *_CONTENT,
                                 "status", "created_at", "updated_at"))  # fmt: skip
            with raw.copy(f"COPY {record} ({columns}) FROM STDIN") as copy:
                for w in creates:
                    copy.write_row(
                        (dataset.pk, subject_ids[w.row.subject_id], w.row.external_id,
                         *_content_values(w), Record.Status.ACTIVE.value, now, now)
                    )  # fmt: skip
        if updates:
            cursor.execute(_STAGING_DDL)
            columns = ", ".join(("record_id", "subject_id", *_CONTENT))
            with raw.copy(f"COPY {_STAGING} ({columns}) FROM STDIN") as copy:
                for w in updates:
                    copy.write_row((w.pk, subject_ids[w.row.subject_id], *_content_values(w)))
            cursor.execute(f"ANALYZE {_STAGING}")  # so the join below probes the primary key
            cursor.execute(_UPDATE, [now])
            # The transaction may go on to ingest more before its commit empties the table.
            cursor.execute("DELETE FROM lethe_ingest_updates")


def _content_values(w: _Write) -> tuple[Any, ...]:
    row, messages = w.row, w.row.messages_json()
    # COPY's text format takes the JSON text for a jsonb column.
    encoded = None if messages is None else json.dumps(messages)
    return (row.text, row.label, row.response, encoded, w.image_key, row.image_digest)


# As ``_STORED_SQL``: one probe of the unique ref index per ref, never a scan.
_SUBJECT_IDS = (
    "SELECT s.external_ref, s.id FROM unnest(%s::text[]) AS k(ref) CROSS JOIN LATERAL ("
    "SELECT external_ref, id FROM governance_subject WHERE external_ref = k.ref LIMIT 1) s"
)
_SUBJECTS_ADD = (
    "INSERT INTO governance_subject (external_ref, created_at) SELECT unnest(%s::text[]), %s "
    "ON CONFLICT (external_ref) DO NOTHING RETURNING external_ref, id"
)


def _subject_ids_copy(refs: set[str], now: Any) -> dict[str, int]:
    """Subject id by ref, creating the missing subjects: one lookup on the unique ref index,
    one insert of the rest (a subject another request adds meanwhile is looked up again)."""
    with connection.cursor() as cursor:
        cursor.execute(_SUBJECT_IDS, [sorted(refs)])  # in index order, as ``_stored``
        known: dict[str, int] = dict(cursor.fetchall())
        if missing := sorted(refs - known.keys()):
            cursor.execute(_SUBJECTS_ADD, [missing, now])
            known.update(cursor.fetchall())
        if raced := sorted(refs - known.keys()):
            cursor.execute(_SUBJECT_IDS, [raced])
            known.update(cursor.fetchall())
    return known
