"""Lineage lookup latency at 10k, 100k and 1M records, API against the selector, on PostgreSQL.

For each size N the lineage tables are emptied and rebuilt with COPY: N records from the
sample tickets (ids cycled, about N/3.7 subjects), one trained-shape model (4 shards,
4 slices, 4 cyclic sequences: 64 stages, all "trained"), its generation-1 shards, slices,
sequences, stages with their slice links, one serving manifest, and N slice assignments
placed by ``unlearning.partition.assign`` (subject-grouped, as ``model_train`` does). No
training runs: a lookup only reads rows. Then ``VACUUM ANALYZE``.

At each size, ~200 random subjects are looked up twice, in alternating order:
``GET /api/v1/subjects/{id}/lineage/`` through DRF's in-process ``APIClient`` with a privacy
officer's token, and ``governance.selectors.lineage.subject_lineage`` called directly (baseline).
Then the same lookups again on a connection with prepared statements
(``DATABASE_PREPARE_THRESHOLD=5``, off by default), the variant an operator may choose.
At the largest size the selector's queries are captured and run under
``EXPLAIN (ANALYZE, BUFFERS)``; the plans are stored with the relations each one scans.

Writes bench/results/lineage.json (``summary``: the API's p95 and p50 at 1M) and prints a
table; each size also records one ``SELECT 1`` round trip, the floor under every query.
The script drops and recreates the database named by DATABASE_URL (only ``lethe_bench*``
names are accepted; default postgres://postgres@127.0.0.1:5432/lethe_bench).

Usage: python bench/bench_lineage.py [--sizes 10000,100000,1000000] [--lookups 200] [--quick]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    Row,
    api_client,
    bulk_lineage,
    copy_records,
    database_options,
    django_setup,
    generate_rows,
    machine_info,
    postgres_url,
    prepared_statements,
    print_table,
    ratio,
    recreate_postgres,
    stats_ms,
    write_results,
)

SHARDS, SLICES, BUDGET, POLICY = 4, 4, 4, "cyclic"
WARMUP = 20
# Relations smaller than this may be scanned: a sequential scan of a few pages is the
# planner's right choice there.
SMALL_TABLE_ROWS = 10_000
_INDEX = re.compile(r"(?:Index(?: Only)? Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)")
_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


def _lineage_models() -> list[Any]:
    from governance.models import (
        Dataset,
        Record,
        Sequence,
        ServingManifest,
        Shard,
        Slice,
        SliceAssignment,
        Stage,
        Subject,
        UnlearningModel,
    )

    return [
        SliceAssignment,
        Stage.slices.through,
        Stage,
        Sequence,
        Slice,
        Shard,
        ServingManifest,
        UnlearningModel,
        Record,
        Subject,
        Dataset,
    ]


def _truncate() -> None:
    from django.db import connection

    tables = ", ".join(m._meta.db_table for m in _lineage_models())
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def _build(size: int) -> dict[str, Any]:
    """Empty the lineage tables and load ``size`` records with a trained-shape model."""
    from django.db import connection, transaction
    from django.utils import timezone

    from governance import engine
    from governance.models import Dataset, ServingManifest, Stage, UnlearningModel
    from governance.services.serving import manifest_digest
    from unlearning.partition import assign
    from unlearning.sample_data import LABELS

    timings: dict[str, float] = {}
    start = time.perf_counter()
    _truncate()
    rows: list[Row] = list(generate_rows(size))
    now = timezone.now()
    with transaction.atomic():
        dataset = Dataset.objects.create(name=f"bench-lineage-{size}", labels=list(LABELS))
        subject_id = copy_records(rows, dataset, now)
    timings["records_s"] = time.perf_counter() - start

    t0 = time.perf_counter()
    cells = assign(
        [(r.external_id, r.subject_id) for r in rows], num_shards=SHARDS, num_slices=SLICES, seed=0
    )
    timings["assign_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with transaction.atomic():
        model = UnlearningModel.objects.create(
            name=f"bench-lineage-{size}",
            dataset=dataset,
            base_model="minilm",
            num_shards=SHARDS,
            num_slices=SLICES,
            budget=BUDGET,
            sequence_policy=POLICY,
            status=UnlearningModel.Status.READY,
            generation=1,
        )

        def stage_fields(shard: int, prefix: tuple[int, ...]) -> dict[str, Any]:
            return {"tensor_digest": f"sha256:{shard:02d}{engine.prefix_text(prefix)}"}

        entries = []
        for built in bulk_lineage(model, rows, cells, stage_fields):
            serving = [built.stages[built.plan[0][:d]] for d in range(1, SLICES + 1)]
            entries.append(
                {
                    "shard": built.shard.index,
                    "sequence": 0,
                    "depth": SLICES,
                    "stages": [
                        {"id": st.pk, "prefix": st.prefix, "digest": st.tensor_digest}
                        for st in serving
                    ],
                }
            )
        ServingManifest.objects.create(
            model=model,
            version=1,
            generation=1,
            entries=entries,
            digest=manifest_digest(model.pk, 1, entries),
            reason="bench",
        )
    timings["lineage_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    timings["vacuum_analyze_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    return {
        "records": len(rows),
        "subjects": len(subject_id),
        "assignments": len(cells),
        "stages": Stage.objects.count(),
        "stage_slice_links": Stage.slices.through.objects.count(),
        "build": {k: round(v, 2) for k, v in timings.items()},
        "subject_refs": sorted(subject_id),
    }


def _measure(client: Any, refs: list[str], lookups: int, seed: int) -> dict[str, Any]:
    from governance.selectors.lineage import subject_lineage

    rng = random.Random(seed)
    chosen = rng.sample(refs, min(lookups + WARMUP, len(refs)))
    warm, measured = chosen[:WARMUP], chosen[WARMUP:]

    def api(ref: str) -> int:
        response = client.get(f"/api/v1/subjects/{ref}/lineage/")
        if response.status_code != 200:
            sys.exit(f"lineage of {ref} answered {response.status_code}: {response.content!r}")
        return len(response.json()["records"])

    def selector(ref: str) -> int:
        return len(subject_lineage(subject_ref=ref)["records"])

    for ref in warm:
        api(ref)
        selector(ref)
    api_ms, selector_ms, records = [], [], []
    for n, ref in enumerate(measured):
        # Alternate which goes first, so neither always finds the other's pages cached.
        order = (("api", api), ("selector", selector))[:: 1 if n % 2 == 0 else -1]
        for name, fn in order:
            start = time.perf_counter()
            count = fn(ref)
            (api_ms if name == "api" else selector_ms).append((time.perf_counter() - start) * 1000)
        records.append(count)
    api_stats, selector_stats = stats_ms(api_ms), stats_ms(selector_ms)
    return {
        # The floor under every statement: one trivial query's round trip through Django.
        "round_trip": _round_trip(len(measured)),
        "api": api_stats,
        "selector": selector_stats,
        "api_over_selector_p50": ratio(api_stats["p50_ms"], selector_stats["p50_ms"]),
        "api_over_selector_p95": ratio(api_stats["p95_ms"], selector_stats["p95_ms"]),
        "records_per_lookup_mean": round(sum(records) / len(records), 2),
        "queries": _query_counts(client, measured[0]),
    }


def _round_trip(samples: int) -> dict[str, float]:
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(samples):
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            times.append((time.perf_counter() - start) * 1000)
    return stats_ms(times)


def _query_counts(client: Any, ref: str) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.selectors.lineage import subject_lineage

    with CaptureQueriesContext(connection) as api:
        client.get(f"/api/v1/subjects/{ref}/lineage/")
    with CaptureQueriesContext(connection) as selector:
        subject_lineage(subject_ref=ref)
    return {"api": len(api.captured_queries), "selector": len(selector.captured_queries)}


def _explain(ref: str) -> list[dict[str, Any]]:
    """The selector's queries for one subject under EXPLAIN (ANALYZE, BUFFERS)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.selectors.lineage import subject_lineage

    with CaptureQueriesContext(connection) as captured:
        subject_lineage(subject_ref=ref)
    sizes = _table_rows()
    plans = []
    for query in captured.captured_queries:
        sql = query["sql"]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            text = "\n".join(row[0] for row in cursor.fetchall())
        scanned = sorted(set(re.findall(r"Seq Scan on (\w+)", text)))
        plans.append(
            {
                "sql": sql,
                "plan": text,
                "execution_ms": float(m[1]) if (m := _EXECUTION.search(text)) else None,
                "indexes_used": sorted(set(_INDEX.findall(text))),
                "seq_scans": {t: sizes.get(t, 0) for t in scanned},
                "large_seq_scans": [t for t in scanned if sizes.get(t, 0) >= SMALL_TABLE_ROWS],
            }
        )
    return plans


def _table_rows() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        # reltuples: the row estimate VACUUM ANALYZE just wrote (the planner's own figure).
        cursor.execute(
            "SELECT relname, greatest(reltuples, 0)::bigint FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
        return dict(cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated record counts"
    )
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2k and 10k records")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.lookups = "2000,10000", 40
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))

    url = postgres_url()
    recreate_postgres(url)
    django_setup(url)
    from governance.permissions import Role

    client = api_client("olivia", Role.PRIVACY_OFFICER)
    by_size: dict[str, Any] = {}
    plans: list[dict[str, Any]] = []
    for size in sizes:
        print(f"building {size:,} records ...", flush=True)
        built = _build(size)
        refs = built.pop("subject_refs")
        print(
            f"  built in {built['build']['total_s']} s; measuring {args.lookups} lookups",
            flush=True,
        )
        measured = _measure(client, refs, args.lookups, seed=size)
        # The opt-in variant in the same run: server-side binding, statements prepared.
        with prepared_statements(True) as options:
            measured["prepared"] = _measure(client, refs, args.lookups, seed=size)
            measured["prepared"]["database_options"] = options
        by_size[str(size)] = {**built, **measured}
        if size == sizes[-1]:
            plans = _explain(random.Random(1).choice(refs))
            # What the server spends on one lookup's statements, without the round trips.
            executed = sum(p["execution_ms"] or 0.0 for p in plans)
            by_size[str(size)]["explain_execution_ms"] = round(executed, 3)

    at_1m = by_size.get("1000000")  # the headline size; None in a smaller run
    results = {
        "summary": {
            "lineage_p95_ms_1m": at_1m["api"]["p95_ms"] if at_1m else None,
            "lineage_p50_ms_1m": at_1m["api"]["p50_ms"] if at_1m else None,
            "lineage_p95_ms_1m_prepared": at_1m["prepared"]["api"]["p95_ms"] if at_1m else None,
        },
        "machine": machine_info(postgres=True),
        "settings": {
            "sizes": sizes,
            "lookups_per_size": args.lookups,
            "warmup_lookups": WARMUP,
            "model": {"shards": SHARDS, "slices": SLICES, "budget": BUDGET, "policy": POLICY},
            "assignment": "unlearning.partition.assign (subject-grouped, seed 0)",
            "load": "COPY, then VACUUM ANALYZE",
            "client": "rest_framework.test.APIClient, in process, privacy_officer token",
            "order": "per subject, API and selector alternate which runs first",
            "database": "postgresql",
            "database_options": database_options(),
            "variant": (
                "prepared: the same lookups again with DATABASE_PREPARE_THRESHOLD=5 "
                "(parameters bound on the server, statements prepared after 5 runs)"
            ),
            "quick": args.quick,
        },
        "sizes": by_size,
        "explain": {"records": sizes[-1], "queries": plans},
        "large_seq_scans": sorted({t for p in plans for t in p["large_seq_scans"]}),
    }
    path = write_results("lineage", results)
    print_table(
        "Lineage lookup (PostgreSQL)",
        [
            "records",
            "subjects",
            "API p50",
            "API p95",
            "selector p50",
            "selector p95",
            "API/sel p50",
            "queries API/sel",
            "SELECT 1 p50",
        ],
        [
            [
                int(size),
                s["subjects"],
                s["api"]["p50_ms"],
                s["api"]["p95_ms"],
                s["selector"]["p50_ms"],
                s["selector"]["p95_ms"],
                s["api_over_selector_p50"],
                f"{s['queries']['api']}/{s['queries']['selector']}",
                s["round_trip"]["p50_ms"],
            ]
            for size, s in by_size.items()
        ],
    )
    print_table(
        "Same lookups, DATABASE_PREPARE_THRESHOLD=5 (opt-in variant)",
        ["records", "API p50", "API p95", "selector p50", "selector p95", "API p95 default/this"],
        [
            [
                int(size),
                s["prepared"]["api"]["p50_ms"],
                s["prepared"]["api"]["p95_ms"],
                s["prepared"]["selector"]["p50_ms"],
                s["prepared"]["selector"]["p95_ms"],
                ratio(s["api"]["p95_ms"], s["prepared"]["api"]["p95_ms"]),
            ]
            for size, s in by_size.items()
        ],
    )
    print(f"\nEXPLAIN ANALYZE at {sizes[-1]:,} records:")
    for n, p in enumerate(plans, 1):
        scans = ", ".join(f"{t} ({rows:,} rows)" for t, rows in p["seq_scans"].items()) or "none"
        print(f"  q{n}: indexes {', '.join(p['indexes_used']) or 'none'}; seq scans: {scans}")
    if results["large_seq_scans"]:
        print(f"  large tables scanned: {', '.join(results['large_seq_scans'])}")
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
