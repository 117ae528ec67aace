"""Lineage and ingest read the big tables by index only: EXPLAIN on PostgreSQL, populated.

The tables are loaded the way bench/bench_lineage.py loads them (COPY, then ANALYZE so the
planner sees their real sizes): 20,000 records of about 5,400 subjects, a trained-shape
model (4 shards, 4 slices, 4 cyclic sequences) and one assignment per record. Every
statement ``subject_lineage`` and the ingest lookup run is then planned with EXPLAIN, and
none may scan a large table sequentially (a few-row table such as the 16 slices may be:
that is the planner's right choice there).
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.harness import bulk_lineage, copy_records, generate_rows
from governance import engine
from governance.models import Dataset, UnlearningModel
from governance.selectors.lineage import subject_lineage
from governance.services import datasets as dataset_services
from unlearning.partition import assign
from unlearning.sample_data import LABELS

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="EXPLAIN is PostgreSQL's"),
]

RECORDS = 20_000
LARGE = 5_000  # rows from which a sequential scan is refused
BIG_TABLES = ("governance_record", "governance_subject", "governance_sliceassignment")


@pytest.fixture
def loaded():
    rows = list(generate_rows(RECORDS))
    dataset = Dataset.objects.create(name="explain", labels=list(LABELS))
    refs = copy_records(rows, dataset, timezone.now())
    model = UnlearningModel.objects.create(
        name="explain", dataset=dataset, base_model="minilm", num_shards=4, num_slices=4,
        budget=4, sequence_policy="cyclic", status=UnlearningModel.Status.READY, generation=1,
    )  # fmt: skip
    cells = assign(
        [(r.external_id, r.subject_id) for r in rows], num_shards=4, num_slices=4, seed=0
    )
    built = bulk_lineage(
        model,
        rows,
        cells,
        lambda shard, prefix: {"tensor_digest": f"sha256:{shard}{engine.prefix_text(prefix)}"},
    )
    from governance.models import ServingManifest

    entries = [
        {"shard": b.shard.index, "sequence": 0, "depth": 4,
         "stages": [{"id": b.stages[b.plan[0][:d]].pk} for d in range(1, 5)]}
        for b in built
    ]  # fmt: skip
    ServingManifest.objects.create(
        model=model, version=1, generation=1, entries=entries, digest="x", reason="test"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)", [list(BIG_TABLES)]
        )
        sizes = dict(cursor.fetchall())
    assert all(sizes[t] >= LARGE for t in BIG_TABLES), sizes  # the planner knows they are big
    return dataset, sorted(refs), rows


def _plans(run) -> list[tuple[str, str]]:
    with CaptureQueriesContext(connection) as captured:
        run()
    plans = []
    for query in captured.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {query['sql']}")
            plans.append((query["sql"], "\n".join(row[0] for row in cursor.fetchall())))
    return plans


def _large_scans(plan: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")
        sizes = dict(cursor.fetchall())
    return [t for t in re.findall(r"Seq Scan on (\w+)", plan) if sizes.get(t, 0) >= LARGE]


def test_every_lineage_query_is_an_index_scan(loaded):
    _, refs, _ = loaded
    ref = refs[len(refs) // 2]
    assert subject_lineage(subject_ref=ref)["models"][0]["records"]  # a trained subject

    plans = _plans(lambda: subject_lineage(subject_ref=ref, datasets=Dataset.objects.all()))

    assert len(plans) == 3  # records, models with their manifest, assignments with stages
    for sql, plan in plans:
        assert not _large_scans(plan), f"{sql}\n{plan}"
    records, _, assignments = (plan for _, plan in plans)
    assert "record_subject" in records  # records found by their subject, not by scanning
    assert "subject_unique_ref" in records
    assert "assignment_one_per_generation" in assignments


def test_an_unknown_subject_costs_one_indexed_query(loaded):
    plans = _plans(lambda: subject_lineage(subject_ref="nobody"))

    assert len(plans) == 1
    assert not _large_scans(plans[0][1])


def test_the_ingest_lookup_is_an_index_scan(loaded):
    dataset, _, rows = loaded
    # 100 stored records and 100 new ones: 1% of the table, as a batch of 5,000 is of a
    # table of 500,000 (at 5% and more of a table, reading it whole is the faster plan).
    ids = [r.external_id for r in rows[:: RECORDS // 100]] + [f"new-{n}" for n in range(100)]

    plans = _plans(lambda: dataset_services._stored(dataset, ids))

    assert len(plans) == 1
    sql, plan = plans[0]
    assert not _large_scans(plan), f"{sql}\n{plan}"
    assert "record_unique_id" in plan
