"""Ingestion throughput through the API against raw ORM inserts, on PostgreSQL.

N records (default 100,000) are generated deterministically from the sample tickets
(``unlearning.sample_data.generate``, ids cycled to reach N; about N/3.7 subjects) and sent
in batches (default 5,000) to ``POST /api/v1/datasets/{id}/records/`` with an integration
persona's token, through DRF's in-process ``APIClient`` (no sockets). Request bodies are
encoded before the clock starts: a client sends bytes, and decoding them is the API's work.

Passes, each into empty record and subject tables (truncated in between):
- baseline: ``Subject.objects.bulk_create`` + ``Record.objects.bulk_create`` of the same
  rows and batches, one transaction per batch (the inserts alone, no lookups or checks);
- API, JSON bodies; then the same JSON re-posted once: the idempotent no-op pass;
- API, CSV bodies;
- growth: JSON batches into an empty table until it holds the largest of ``--growth``
  records (default 10k, 100k, 1M), timing every batch against the table size before it,
  so throughput is reported per segment (0-10k, 10k-100k, 100k-1M) and flatness is the
  ratio of the last segment to the first. The first segment, two batches, is run five
  times from an empty table and its median run reported. Per segment PostgreSQL's own
  counters say what a record cost the server: WAL bytes, shared-buffer misses of the
  record and subject tables and their indexes (``pg_statio_*``), checkpoints during the
  segment.

Writes bench/results/ingest.json (``summary``: the JSON and CSV rates at 100k and the
growth ratio) and prints a table. The script drops and recreates the database named by
DATABASE_URL (only ``lethe_bench*`` names are accepted; default
postgres://postgres@127.0.0.1:5432/lethe_bench).

Usage: python bench/bench_ingest.py [--records N] [--batch B] [--growth 10000,100000,1000000]
       [--quick]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    Row,
    api_client,
    chunks,
    django_setup,
    generate_rows,
    machine_info,
    postgres_url,
    print_table,
    ratio,
    recreate_postgres,
    stats_ms,
    write_results,
)


def _csv_body(batch: list[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["external_id", "subject_id", "text", "label"])
    writer.writerows([r.external_id, r.subject_id, r.text, r.label] for r in batch)
    return out.getvalue().encode()


def _truncate() -> None:
    from django.db import connection

    from governance.models import Record, Subject

    tables = ", ".join(m._meta.db_table for m in (Record, Subject))
    with connection.cursor() as cursor:
        # CASCADE reaches only the (empty) lineage tables that reference records.
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        cursor.execute(f"VACUUM ANALYZE {tables}")


def _orm_pass(dataset: Any, batches: list[list[Row]]) -> dict[str, Any]:
    """The same rows written with bulk_create only: the floor for any ingest path."""
    from django.db import transaction

    from governance.models import Record, Subject

    subject_pk: dict[str, int] = {}
    per_batch = []
    start = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        with transaction.atomic():
            new = {r.subject_id for r in batch} - subject_pk.keys()
            created = Subject.objects.bulk_create(
                [Subject(external_ref=ref) for ref in sorted(new)], batch_size=2000
            )
            subject_pk.update({s.external_ref: s.pk for s in created})
            Record.objects.bulk_create(
                [
                    Record(
                        dataset=dataset,
                        subject_id=subject_pk[r.subject_id],
                        external_id=r.external_id,
                        text=r.text,
                        label=r.label,
                    )
                    for r in batch
                ],
                batch_size=2000,
            )
        per_batch.append((time.perf_counter() - t0) * 1000)
    return _summary(time.perf_counter() - start, sum(map(len, batches)), per_batch)


def _api_pass(
    client: Any, url: str, bodies: list[bytes], content_type: str, expect: tuple[str, int]
) -> dict[str, Any]:
    """Post every body and check the answers: ``expect`` is the outcome every row must have."""
    per_batch, totals = [], {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    start = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        response = client.post(url, data=body, content_type=content_type)
        per_batch.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            sys.exit(f"POST {url} answered {response.status_code}: {response.content[:500]!r}")
        answer = response.json()
        for key in ("created", "updated", "unchanged"):
            totals[key] += answer[key]
        totals["rejected"] += len(answer["rejected"])
    elapsed = time.perf_counter() - start
    outcome, records = expect
    if totals[outcome] != records or sum(totals.values()) != records:
        sys.exit(f"expected all {records} rows {outcome}, got {totals}")
    return {**_summary(elapsed, records, per_batch), "outcome": totals}


# Where a batch's time goes: the three steps of the request that touch the rows, timed by
# wrapping the functions the view calls (what is left is parsing, auth and rendering).
_STEPS = {
    "validate_ms": ("governance.api.records", "validate_rows"),
    "lookup_ms": ("governance.services.datasets", "_stored"),
    "write_ms": ("governance.services.datasets", "_write"),
    # Part of write_ms on PostgreSQL: the subject lookup and insert before the COPY.
    "subjects_ms": ("governance.services.datasets", "_subject_ids_copy"),
}


def _timed_steps() -> dict[str, float]:
    """Wrap the steps once; the returned totals (ms) grow as batches run."""
    import importlib

    totals = dict.fromkeys(_STEPS, 0.0)
    for key, (module_name, name) in _STEPS.items():
        module = importlib.import_module(module_name)
        inner = getattr(module, name)

        def timed(*args: Any, _inner: Any = inner, _key: str = key, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                totals[_key] += (time.perf_counter() - t0) * 1000

        setattr(module, name, timed)
    return totals


# PostgreSQL's own counters, read around each growth segment: what a record cost the server.
_COUNTERS = """
    SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
           (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter),
           (SELECT coalesce(sum(heap_blks_read), 0) FROM pg_statio_user_tables
              WHERE relname IN ('governance_record', 'governance_subject')),
           (SELECT coalesce(sum(heap_blks_hit), 0) FROM pg_statio_user_tables
              WHERE relname IN ('governance_record', 'governance_subject')),
           (SELECT coalesce(sum(idx_blks_read), 0) FROM pg_statio_user_indexes
              WHERE relname IN ('governance_record', 'governance_subject')),
           (SELECT coalesce(sum(idx_blks_hit), 0) FROM pg_statio_user_indexes
              WHERE relname IN ('governance_record', 'governance_subject'))
"""
_COUNTER_NAMES = ("wal_bytes", "checkpoints", "heap_blks_read", "heap_blks_hit",
                  "idx_blks_read", "idx_blks_hit")  # fmt: skip


def _db_counters() -> dict[str, int]:
    """WAL position, checkpoints and the record/subject tables' buffer hits and misses
    (a miss: the page was not in shared_buffers). This backend's pending statistics are
    flushed first, so they include the batches just sent."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(_COUNTERS)
        # sum() of bigint counters is numeric (a Decimal here): ints for the JSON file.
        return dict(zip(_COUNTER_NAMES, map(int, cursor.fetchone()), strict=True))


def _per_record(before: dict[str, int], after: dict[str, int], records: int) -> dict[str, Any]:
    delta = {key: after[key] - before[key] for key in before}
    read = delta["heap_blks_read"] + delta["idx_blks_read"]
    touched = read + delta["heap_blks_hit"] + delta["idx_blks_hit"]
    return {
        "wal_bytes_per_record": round(delta["wal_bytes"] / records, 1),
        "checkpoints": delta["checkpoints"],
        "buffer_misses_per_record": round(read / records, 3),
        "index_misses_per_record": round(delta["idx_blks_read"] / records, 3),
        "buffer_hit_ratio": round(1 - read / touched, 4) if touched else None,
    }


FIRST_SEGMENT_RUNS = 5


def _growth_pass(client: Any, url: str, sizes: list[int], batch_size: int) -> list[dict[str, Any]]:
    """Grow an empty table to ``max(sizes)`` through the API; one summary per segment, with
    the mean time per batch of each step (``_STEPS``) and what PostgreSQL's counters say each
    record cost (WAL bytes, shared-buffer misses, checkpoints during the segment).

    Bodies are encoded per segment just before it runs (1M records of JSON would hold about
    200 MB at once), outside the clock.
    """
    segments, start_size = [], 0
    totals = _timed_steps()
    for size in sizes:
        rows = list(generate_rows(size - start_size, offset=start_size))
        bodies = [json.dumps([r.as_dict() for r in b]).encode() for b in chunks(rows, batch_size)]
        runs = []
        # The first segment is a couple of batches: one slow moment of a shared machine
        # moves its rate by half. It is run FIRST_SEGMENT_RUNS times from an empty table,
        # and its median run is the one reported (the table then holds that run's rows).
        for run in range(FIRST_SEGMENT_RUNS if start_size == 0 else 1):
            if run:
                _truncate()
            before, counters = dict(totals), _db_counters()
            summary = _api_pass(client, url, bodies, "application/json", ("created", len(rows)))
            summary["steps_per_batch_ms"] = {
                key: round((totals[key] - before[key]) / len(bodies), 2) for key in totals
            }
            summary["server"] = _per_record(counters, _db_counters(), len(rows))
            runs.append(summary)
        summary = sorted(runs, key=lambda r: r["records_per_s"])[len(runs) // 2]
        if len(runs) > 1:
            summary["runs_records_per_s"] = [r["records_per_s"] for r in runs]
        segments.append({"from_records": start_size, "to_records": size, **summary})
        print(f"  table {start_size:,} -> {size:,}: {summary['records_per_s']:,.0f} records/s",
              flush=True)  # fmt: skip
        start_size = size
    return segments


def _summary(seconds: float, records: int, per_batch_ms: list[float]) -> dict[str, Any]:
    return {
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 1),
        "batch": stats_ms(per_batch_ms),
    }


def _table_row(name: str, p: dict[str, Any], orm_seconds: float) -> list[Any]:
    batch = p["batch"]
    return [name, p["records_per_s"], p["seconds"], batch["p50_ms"], batch["p95_ms"],
            ratio(p["seconds"], orm_seconds)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument(
        "--growth", default="10000,100000,1000000", help="table sizes ('' skips the part)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 4,000 records")
    args = parser.parse_args()
    if args.quick:
        args.records, args.batch, args.growth = 4_000, 1_000, "2000,6000"
    growth = sorted({int(size) for size in args.growth.split(",") if size.strip()})

    url = postgres_url()
    recreate_postgres(url)
    django_setup(url)
    from django.conf import settings

    from governance.permissions import Role
    from governance.services.datasets import dataset_create
    from unlearning.sample_data import LABELS

    rows = list(generate_rows(args.records))
    batches = chunks(rows, args.batch)
    json_bodies = [json.dumps([r.as_dict() for r in b]).encode() for b in batches]
    csv_bodies = [_csv_body(b) for b in batches]
    client = api_client("ingrid-bot", Role.INTEGRATION)
    # The integration account creates the dataset it writes to: it owns it (scope).
    from django.contrib.auth.models import User

    owner = User.objects.get(username="ingrid-bot")
    dataset = dataset_create(actor=owner, name="bench-ingest", labels=LABELS)
    endpoint = f"/api/v1/datasets/{dataset.pk}/records/"

    print(f"{len(rows):,} records in {len(batches)} batches of {args.batch:,} ...", flush=True)
    orm = _orm_pass(dataset, batches)
    _truncate()
    api_json = _api_pass(client, endpoint, json_bodies, "application/json", ("created", len(rows)))
    noop = _api_pass(client, endpoint, json_bodies, "application/json", ("unchanged", len(rows)))
    _truncate()
    api_csv = _api_pass(client, endpoint, csv_bodies, "text/csv", ("created", len(rows)))
    segments = []
    if growth:
        _truncate()
        print(f"growth to {growth[-1]:,} records ...", flush=True)
        segments = _growth_pass(client, endpoint, growth, args.batch)

    passes = {"orm_bulk_create": orm, "api_json": api_json, "api_json_noop": noop,
              "api_csv": api_csv}  # fmt: skip
    growth_ratio = (
        ratio(segments[-1]["records_per_s"], segments[0]["records_per_s"]) if segments else None
    )
    results = {
        "summary": {
            "ingest_per_s_100k": api_json["records_per_s"],
            "ingest_csv_per_s_100k": api_csv["records_per_s"],
            "ingest_growth_ratio": growth_ratio,
        },
        "machine": machine_info(postgres=True),
        "settings": {
            "records": len(rows),
            "subjects": len({r.subject_id for r in rows}),
            "batch_size": args.batch,
            "batches": len(batches),
            "json_bytes_per_batch": round(sum(map(len, json_bodies)) / len(batches)),
            "csv_bytes_per_batch": round(sum(map(len, csv_bodies)) / len(batches)),
            "client": "rest_framework.test.APIClient, in process",
            "database": "postgresql",
            "debug": settings.DEBUG,
            "orm_batch_size": 2000,
            "quick": args.quick,
        },
        "passes": passes,
        "ratios": {
            "api_json_time_over_orm": ratio(api_json["seconds"], orm["seconds"]),
            "api_csv_time_over_orm": ratio(api_csv["seconds"], orm["seconds"]),
            "api_csv_time_over_json": ratio(api_csv["seconds"], api_json["seconds"]),
            "noop_time_over_api_json": ratio(noop["seconds"], api_json["seconds"]),
            "growth_last_over_first_throughput": growth_ratio,
        },
        "growth": segments,
    }
    path = write_results("ingest", results)
    print_table(
        f"Ingest, {len(rows):,} records, batches of {args.batch:,} (PostgreSQL)",
        ["pass", "records/s", "seconds", "batch p50 ms", "batch p95 ms", "x ORM time"],
        [_table_row(name, p, orm["seconds"]) for name, p in passes.items()],
    )
    if segments:
        print_table(
            "Growth through the API (JSON), throughput per segment of table size",
            ["table size", "records/s", "seconds", "batch p50 ms", "batch p95 ms",
             "validate ms", "lookup ms", "write ms", "of which subjects ms",
             "WAL bytes/record", "misses/record", "hit ratio", "checkpoints"],
            [[f"{g['from_records']:,} -> {g['to_records']:,}", g["records_per_s"], g["seconds"],
              g["batch"]["p50_ms"], g["batch"]["p95_ms"],
              *g["steps_per_batch_ms"].values(), g["server"]["wal_bytes_per_record"],
              g["server"]["buffer_misses_per_record"], g["server"]["buffer_hit_ratio"],
              g["server"]["checkpoints"]] for g in segments],
        )  # fmt: skip
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
