"""The bulk write path of ``records_upsert``: COPY on PostgreSQL, the ORM elsewhere, one
behaviour. Every test runs on both backends (the suite's DATABASE_URL decides)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import Record, Subject
from governance.services import datasets as dataset_services
from governance.services.datasets import TRAINED_RECORD_CHANGED, dataset_create, records_upsert
from governance.services.record_rows import validate_rows

pytestmark = pytest.mark.django_db
LABELS = ["a", "b"]


def rows(count, *, start=0, subject=lambda n: f"s-{n % 7}", text=lambda n: f"text {n}"):
    return [
        {"external_id": f"r-{n}", "subject_id": subject(n), "text": text(n), "label": "a"}
        for n in range(start, start + count)
    ]


def upsert(dataset, raw, task="classification"):
    valid, errors = validate_rows(raw, labels=dataset.labels, max_rows=10_000, task=task)
    assert errors == []
    return records_upsert(actor="test", dataset=dataset, rows=valid)


@pytest.fixture
def dataset():
    return dataset_create(actor="test", name="bulk", labels=LABELS)


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite's ORM path chunks")
def test_the_statement_count_does_not_grow_with_the_batch(dataset):
    def statements(raw):
        with CaptureQueriesContext(connection) as captured:
            upsert(dataset, raw)
        return len(captured.captured_queries)

    # New records of new subjects both times: COPY, one subject lookup, one subject insert.
    new = {"subject": lambda n: f"s-{n}"}
    small, large = statements(rows(10, **new)), statements(rows(1_000, start=10, **new))

    assert small == large
    assert Record.objects.filter(dataset=dataset).count() == 1_010


def test_awkward_text_is_stored_exactly(dataset):
    # What COPY's text format escapes: tabs, newlines, backslashes, and the \N of NULL.
    awkward = ["tab\there", "line\nbreak\r\n", "back\\slash \\N", "é 🙂 ‮", "\\.", "'quote\""]
    upsert(dataset, rows(len(awkward), text=lambda n: awkward[n]))

    stored = dict(Record.objects.values_list("external_id", "text"))
    assert stored == {f"r-{n}": text for n, text in enumerate(awkward)}


def test_a_mixed_batch_creates_updates_keeps_and_refuses(dataset):
    upsert(dataset, rows(4))
    erased = Record.objects.get(external_id="r-3")
    erased.status, erased.erased_at, erased.text = "erased", timezone.now(), ""
    erased.save()
    before = dict(Record.objects.values_list("external_id", "updated_at"))
    changed = rows(6)
    changed[1]["text"] = "new text"
    changed[2]["subject_id"] = "someone-else"

    result = upsert(dataset, changed)

    assert (result.created, result.updated, result.unchanged) == (2, 2, 1)
    assert [(r["index"], r["field"]) for r in result.rejected] == [(3, "external_id")]
    records = {r.external_id: r for r in Record.objects.select_related("subject")}
    assert records["r-1"].text == "new text"
    assert records["r-2"].subject.external_ref == "someone-else"
    assert records["r-0"].updated_at == before["r-0"]  # unchanged rows are not rewritten
    assert records["r-1"].updated_at > before["r-1"]
    assert (records["r-3"].status, records["r-3"].text) == ("erased", "")
    assert {"r-4", "r-5"} <= records.keys()
    # One subject row per ref, the new one included.
    refs = list(Subject.objects.values_list("external_ref", flat=True))
    assert len(refs) == len(set(refs))
    assert "someone-else" in refs


def test_a_placed_record_refuses_new_content(dataset):
    from governance.models import Shard, Slice, SliceAssignment, UnlearningModel

    upsert(dataset, rows(2))
    model = UnlearningModel.objects.create(
        name="m",
        dataset=dataset,
        base_model="minilm",
        num_shards=1,
        num_slices=1,
        budget=1,
        sequence_policy="cyclic",
        generation=1,
    )
    slice_ = Slice.objects.create(
        shard=Shard.objects.create(model=model, generation=1, index=0), index=0
    )
    SliceAssignment.objects.create(
        record=Record.objects.get(external_id="r-0"), slice=slice_, model=model, generation=1
    )

    result = upsert(dataset, rows(2, text=lambda n: f"changed {n}"))

    assert result.updated == 1
    assert result.rejected == [
        {"index": 0, "field": "external_id", "error": TRAINED_RECORD_CHANGED}
    ]
    assert Record.objects.get(external_id="r-0").text == "text 0"
    assert Record.objects.get(external_id="r-1").text == "changed 1"


def test_conversations_round_trip(dataset):
    generation = dataset_create(actor="test", name="gen", task="generation")
    turns = [{"role": "user", "content": "hi\tthere"}, {"role": "assistant", "content": "hello"}]
    raw = [{"external_id": "g-1", "subject_id": "s", "messages": turns}]

    assert upsert(generation, raw, task="generation").created == 1
    record = Record.objects.get(external_id="g-1")
    assert (record.messages, record.response) == ([turns[0]], "hello")
    assert upsert(generation, raw, task="generation").unchanged == 1  # stored == sent


def test_several_batches_in_one_transaction(dataset):
    with transaction.atomic():
        upsert(dataset, rows(3))
        first = upsert(dataset, rows(3, text=lambda n: f"second {n}"))
        second = upsert(dataset, rows(3, text=lambda n: f"third {n}"))

    assert (first.updated, second.updated) == (3, 3)  # no row of one batch leaks into the next
    assert sorted(Record.objects.values_list("text", flat=True)) == [f"third {n}" for n in range(3)]


def test_a_failed_write_leaves_nothing(dataset, monkeypatch):
    upsert(dataset, rows(2))

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset_services, "_subjects_for", fail)
    monkeypatch.setattr(dataset_services, "_subject_ids_copy", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        upsert(dataset, rows(2, start=5, subject=lambda n: "new-subject"))

    assert Record.objects.count() == 2
    assert not Subject.objects.filter(external_ref="new-subject").exists()
