"""Scale on PostgreSQL: ingestion throughput, lineage lookup and erasure latency, 10k to 1M."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.sections.common import fmt, md_table, save, times

ORDER = 50
TITLE = "5. Scale: ingestion, lineage and erasure from 10k to 1M records"
RESULTS = ("ingest", "lineage", "erasure")

_PASSES = (
    ("orm_bulk_create", "baseline: ORM `bulk_create` only"),
    ("api_json", "API, JSON"),
    ("api_json_noop", "API, JSON re-posted (idempotent no-op)"),
    ("api_csv", "API, CSV"),
)


def _sizes(block: dict[str, Any]) -> list[int]:
    return sorted(int(size) for size in block)


def _slowest(entry: dict[str, Any]) -> str:
    """The deactivation phase's slowest SELECT: "2.3 (`_i2_check`)"."""
    slowest = entry.get("query_profile", {}).get("deactivate_slowest_select")
    if not slowest:
        return "–"
    function = slowest.get("origin", "").rsplit(" ", 1)[-1]
    return f"{fmt(slowest['ms'], 1)} (`{function}`)"


def summary(results: dict[str, Any]) -> list[str]:
    lines = []
    flat = results["erasure"]["flatness"]
    sizes = _sizes(flat)
    first, last = flat[str(sizes[0])], flat[str(sizes[-1])]
    a, b = (x["approval_to_certificate"]["p50_ms"] for x in (first, last))
    lines.append(
        f"**Erasure at scale**: approval → certificate p50 {fmt(a, 0)} ms at "
        f"{sizes[0]:,} records and {fmt(b, 0)} ms at {sizes[-1]:,} ({times(b / a)})."
    )
    lineage = results["lineage"]["sizes"]
    ls = _sizes(lineage)
    lines.append(
        f"**Lineage lookup** p50 {fmt(lineage[str(ls[0])]['api']['p50_ms'], 1)} ms at "
        f"{ls[0]:,} records, {fmt(lineage[str(ls[-1])]['api']['p50_ms'], 1)} ms at {ls[-1]:,}."
    )
    growth = results["ingest"].get("growth") or []
    if growth:
        lines.append(
            f"**Ingestion** through the API: {fmt(growth[0]['records_per_s'], 0)} records/s "
            f"into an empty table, {fmt(growth[-1]['records_per_s'], 0)} records/s while it "
            f"grows from {growth[-1]['from_records']:,} to {growth[-1]['to_records']:,}."
        )
    return lines


def render(results: dict[str, Any], plots: Path) -> str:
    return "\n\n".join(
        [
            "All three scripts drop and recreate a `lethe_bench*` PostgreSQL database, switch "
            "`DEBUG` off and call the API in process (DRF's `APIClient`, no sockets).",
            _ingest(results["ingest"]),
            _lineage(results["lineage"]),
            _erasure(results["erasure"]),
            _plot(results, plots),
        ]
    )


def _ingest(data: dict[str, Any]) -> str:
    settings, passes = data["settings"], data["passes"]
    orm_s = passes["orm_bulk_create"]["seconds"]
    table = md_table(
        ["pass", "records/s", "seconds", "batch p50 / p95 ms", "× ORM time"],
        [
            [label, fmt(p["records_per_s"], 0), fmt(p["seconds"], 1),
             f"{fmt(p['batch']['p50_ms'], 0)} / {fmt(p['batch']['p95_ms'], 0)}",
             times(p["seconds"] / orm_s)]
            for key, label in _PASSES
            if (p := passes.get(key))
        ],
    )  # fmt: skip
    text = f"""\
### Ingestion (`bench/bench_ingest.py`)

{settings["records"]:,} records ({settings["subjects"]:,} subjects) in batches of
{settings["batch_size"]:,} to `POST /api/v1/datasets/{{id}}/records/` with an
integration token (validation, subject upsert, idempotency by external id, audit event per
batch), against the ORM's `bulk_create` of the same rows with no lookups or checks (what
the API's writes were built on before COPY), each pass into empty tables.

{table}
"""
    growth = data.get("growth") or []
    if growth:
        rows = [
            [f"{g['from_records']:,} → {g['to_records']:,}", fmt(g["records_per_s"], 0),
             fmt(g["seconds"], 1),
             f"{fmt(g['batch']['p50_ms'], 0)} / {fmt(g['batch']['p95_ms'], 0)}",
             times(g["records_per_s"] / growth[0]["records_per_s"]),
             *(fmt(v, 0) for v in (g.get("steps_per_batch_ms") or {}).values()),
             *_server_columns(g)]
            for g in growth
        ]  # fmt: skip
        last = growth[-1]["records_per_s"] / growth[0]["records_per_s"]
        verdict = (
            "Throughput holds as the table grows"
            if last >= 0.9
            else "Throughput falls as the table grows"
        )
        text += f"""
The API path: rows are checked by a plain loop (no per-row serializer); one query reads the
batch's stored records (one array parameter, driven by the `(dataset, external_id)` unique
index); new records are COPYed straight into the record table and changed ones COPYed into
a temporary table and written by one `UPDATE … FROM` on the primary key; subjects are one
lookup and one `INSERT … ON CONFLICT DO NOTHING`. The single-column indexes on the
record's dataset and subject and on the assignment's record and slice are gone (migration
0015): composite indexes already led with those columns, and each was one more index
write per row. SQLite keeps the ORM path with the same decisions.

Growth: the same JSON batches into one table from empty to {growth[-1]["to_records"]:,}
records, throughput per segment of table size. {verdict}: the last segment runs at
{times(last)} the first one's rate. {_growth_cause(growth)}

{md_table(["table size", "records/s", "seconds", "batch p50 / p95 ms", "× first segment",
           "validate ms", "lookup ms", "write ms", "of which subjects ms",
           "WAL bytes / record", "buffer misses / record"], rows)}
"""  # fmt: skip
    return text


def _server_columns(segment: dict[str, Any]) -> list[str]:
    server = segment.get("server")
    if not server:
        return ["–", "–"]
    return [fmt(server["wal_bytes_per_record"], 0), fmt(server["buffer_misses_per_record"], 2)]


def _growth_cause(growth: list[dict[str, Any]]) -> str:
    """Which step's time per batch grew between the first and the last segment."""
    first, last = (g.get("steps_per_batch_ms") for g in (growth[0], growth[-1]))
    if not first or not last:
        return ""
    batch = {g["to_records"]: g["batch"]["mean_ms"] for g in (growth[0], growth[-1])}
    grew = {k: last[k] - first[k] for k in first if k != "subjects_ms"}  # part of write
    worst = max(grew, key=lambda k: grew[k])
    total = batch[growth[-1]["to_records"]] - batch[growth[0]["to_records"]]
    names = {"validate_ms": "validation", "lookup_ms": "the stored-record lookup",
             "write_ms": "the write (subjects, COPY and its index maintenance)",
             "subjects_ms": "the subject lookup and insert"}  # fmt: skip
    return (
        f"Measured per batch (the last four columns: the steps' mean time per batch): the "
        f"mean batch takes {fmt(total, 0)} ms more in the last segment than in the first, "
        f"and the step that grew most is {names[worst]}, by {fmt(grew[worst], 0)} ms "
        f"({fmt(first[worst], 0)} → {fmt(last[worst], 0)} ms), for the same rows per "
        f"batch. {_server_cost(growth)} Before this change the "
        f"lookup was the step that grew: with no statistics yet on a table loaded faster "
        f"than autovacuum analyzes it, `external_id = ANY(…)` was planned as a read of the "
        f"whole dataset (425 ms per batch at 1M, EXPLAIN ANALYZE); it is now one index "
        f"probe per row whatever the statistics say. Validation, which reads no table, went "
        f"{fmt(first['validate_ms'], 0)} → {fmt(last['validate_ms'], 0)} ms in the same "
        f"run: that share of the drift is the shared machine's load, not the table."
    )


def _server_cost(growth: list[dict[str, Any]]) -> str:
    """What PostgreSQL's counters say a record cost it, first segment against the last."""
    first, last = (g.get("server") for g in (growth[0], growth[-1]))
    if not first or not last:
        return (
            "That is the cost of inserting into indexes that grow past PostgreSQL's default "
            "128 MB of shared buffers (not broken down further here)."
        )
    misses = (first["buffer_misses_per_record"], last["buffer_misses_per_record"])
    wal = (first["wal_bytes_per_record"], last["wal_bytes_per_record"])
    counted = (
        f"PostgreSQL's own counters for the record and subject tables and their indexes "
        f"(`pg_statio_*`, WAL position, `pg_stat_bgwriter`) say what a record cost the "
        f"server: {fmt(wal[0], 0)} → {fmt(wal[1], 0)} bytes of WAL and "
        f"{fmt(misses[0], 3)} → {fmt(misses[1], 3)} shared-buffer misses (hit ratio "
        f"{fmt(first['buffer_hit_ratio'], 4)} → {fmt(last['buffer_hit_ratio'], 4)}), with "
        f"{last['checkpoints']} checkpoint(s) during the last segment."
    )
    if misses[1] <= 1.1 * misses[0] and wal[1] <= 1.2 * wal[0]:
        counted += (
            " Neither grew much, so the extra time is not I/O: it is CPU time in the write "
            "and lookup steps (where inside PostgreSQL, these counters do not say), on a "
            "shared machine whose speed also moves from minute to minute"
        )
        runs = growth[0].get("runs_records_per_s")
        if runs:
            counted += (
                f" (the first segment's {len(runs)} runs from an empty table: "
                f"{fmt(min(runs), 0)} to {fmt(max(runs), 0)} records/s)"
            )
        counted += "."
    else:
        counted += (
            " More WAL per record means index pages changed for the first time after a "
            "checkpoint (a full page image each); more misses mean the indexes outgrew "
            "the 128 MB of shared buffers, a setting of the shared server, not of Lethe."
        )
    return counted


def _lineage(data: dict[str, Any]) -> str:
    sizes = data["sizes"]
    rows = [
        [f"{int(n):,}", f"{entry['subjects']:,}",
         f"{fmt(entry['api']['p50_ms'], 1)} / {fmt(entry['api']['p95_ms'], 1)}",
         f"{fmt(entry['selector']['p50_ms'], 1)} / {fmt(entry['selector']['p95_ms'], 1)}",
         times(entry["api_over_selector_p50"]),
         f"{entry['queries']['api']} / {entry['queries']['selector']}",
         fmt(entry["round_trip"]["p50_ms"], 2) if "round_trip" in entry else "–",
         _prepared_cell(entry)]
        for n, entry in sorted(sizes.items(), key=lambda item: int(item[0]))
    ]  # fmt: skip
    large = data.get("large_seq_scans") or []
    scans = (
        "no query scans a large table sequentially"
        if not large
        else f"sequential scans on large tables: {', '.join(map(str, large))}"
    )
    model = data["settings"]["model"]
    return f"""\
### Lineage lookup (`bench/bench_lineage.py`)

`GET /api/v1/subjects/{{id}}/lineage/` (records → shard, slice → every stage that read
them) for random subjects, {data['settings']['lookups_per_size']} lookups per size, on
lineage bulk-loaded with COPY for an m={model['shards']}, L={model['slices']},
B={model['budget']} model; baseline: the selector called directly (no auth, no
rendering). Under EXPLAIN ANALYZE at the largest size {scans}
(tests/governance/test_lineage_explain.py asserts the same on a populated table).

The selector runs three plain SQL statements (records by subject; the models with their
latest manifest; the assignments joined to slice, shard and stages) and reads tuples:
building them through the ORM took six times as long as running them. The API renders the
selector's answer directly instead of through nested serializers (a test checks the two
agree).

{_lineage_bound(sizes)}

{_prepared(data)}

{md_table(["records", "subjects", "API p50 / p95 ms", "selector p50 / p95 ms",
           "API ÷ selector", "queries API / selector", "SELECT 1 p50 ms",
           "API p50 / p95 ms, statements prepared"], rows)}
"""  # fmt: skip


def _prepared_cell(entry: dict[str, Any]) -> str:
    variant = entry.get("prepared")
    if not variant:
        return "–"
    return f"{fmt(variant['api']['p50_ms'], 1)} / {fmt(variant['api']['p95_ms'], 1)}"


def _prepared(data: dict[str, Any]) -> str:
    """What server-side prepared statements (opt-in) do to a lookup, same run."""
    sizes = data["sizes"]
    n = max(int(size) for size in sizes)
    entry = sizes[str(n)]
    variant = entry.get("prepared")
    if not variant:
        return ""
    threshold = variant.get("database_options", {}).get("prepare_threshold", "–")
    return (
        f"The last column repeats the same lookups in the same run with prepared statements "
        f"(`DATABASE_PREPARE_THRESHOLD={threshold}`: parameters bound on the server, a "
        f"statement prepared after {threshold} runs on a connection, after which PostgreSQL "
        f"may reuse a generic plan instead of planning it again): at {n:,} records the API's "
        f"p95 is {fmt(variant['api']['p95_ms'], 1)} ms against {fmt(entry['api']['p95_ms'], 1)} "
        f"ms by default, and the selector's p50 {fmt(variant['selector']['p50_ms'], 2)} "
        f"against {fmt(entry['selector']['p50_ms'], 2)} ms. The setting stays off by default: "
        f"a generic plan chosen while a table is small outlives its growth, which stalled "
        f"ingestion from an empty table in a measured run (docs/operations.md)."
    )


def _lineage_bound(sizes: dict[str, Any]) -> str:
    """Where a lookup's time goes at the largest size: database, selector, request."""
    n = max(int(size) for size in sizes)
    entry = sizes[str(n)]
    executed = entry.get("explain_execution_ms")
    if executed is None or "round_trip" not in entry:
        return ""
    api, selector = entry["api"]["p50_ms"], entry["selector"]["p50_ms"]
    return (
        f"Where the time goes at {n:,} records (p50): the API answers in {fmt(api, 1)} ms, "
        f"the selector alone takes {fmt(selector, 1)} ms, and PostgreSQL executes its "
        f"{entry['queries']['selector']} statements in {fmt(executed, 2)} ms (EXPLAIN "
        f"ANALYZE; a bare `SELECT 1` round trip is {fmt(entry['round_trip']['p50_ms'], 2)} "
        f"ms). The other {fmt(api - selector, 1)} ms are the request itself: token "
        f"authentication (one statement that also reads the user's roles, which the "
        f"permission check and the dataset scope then share), DRF dispatch and rendering; "
        f"none of it grows with the tables."
    )


def _statements(entry: dict[str, Any]) -> Any:
    return entry.get("query_profile", {}).get("approval_to_certificate_statements")


def _erasure(data: dict[str, Any]) -> str:
    flat = data["flatness"]
    sizes = _sizes(flat)
    rows = []
    for n in sizes:
        entry = flat[str(n)]
        deactivate = entry["deactivate"]
        total = entry["approval_to_certificate"]
        rows.append([f"{n:,}", f"{fmt(total['p50_ms'], 0)} / {fmt(total['p95_ms'], 0)}",
                     fmt(entry["approve"]["p50_ms"], 0),
                     f"{fmt(deactivate['p50_ms'], 0)} / {fmt(deactivate['p95_ms'], 0)}",
                     fmt(entry["purge"]["p50_ms"], 0), fmt(entry["certify"]["p50_ms"], 0),
                     fmt(entry["file"]["p50_ms"], 0), _statements(entry) or "–",
                     _slowest(entry), fmt(entry.get("build_s"), 1)])  # fmt: skip
    first = flat[str(sizes[0])]["approval_to_certificate"]["p50_ms"]
    last = flat[str(sizes[-1])]["approval_to_certificate"]["p50_ms"]
    growth = last / first
    verdict = (
        f"Flat: approval → certificate p50 is {times(growth)} at {sizes[-1]:,} records what "
        f"it is at {sizes[0]:,}"
        if growth < 1.3
        else f"**Not flat**: {times(growth)} from {sizes[0]:,} to {sizes[-1]:,} records"
    )
    verdict += "." + _bumps(flat, sizes)
    files = (
        "synthetic stage files: seeded bytes with their digests, since the erasure path "
        "deletes and checks stage files but never loads them"
        if data["settings"].get("skip_training")
        else "the real stage files and digests of the trained model in section 3"
    )
    return f"""\
### Erasure latency (`bench/bench_erasure.py`, parts C and D)

At each size the governance tables are rebuilt with COPY: N records, the same model shape
with 64 `trained` stages ({files}), finished training tasks, real assignments and a
published manifest; then 30 fresh erasures (3 warm-ups). One extra request runs with
every SQL statement timed and traced to the service line that issued it: the statements
from approval to certificate are counted, and the slowest SELECT of the deactivation
phase is shown with the function that issued it.

{md_table(["records", "approval → certificate p50 / p95 ms", "approve p50 ms",
           "deactivate p50 / p95 ms", "purge p50 ms", "certify p50 ms", "filing p50 ms",
           "SQL statements, approval → certificate", "slowest deactivate SELECT ms",
           "build s"], rows)}

{verdict} The erasure path touches the requested subject's records, the stages of the
slices that hold them and the small stage/manifest tables, in a fixed number of
statements: the approval checks the impact preview's version stamp (the audit head and
the models' stage and task counts, one statement) instead of recomputing it, the serving
grid is read in two statements whatever the number of shards and sequences, and the
certificate is built from rows read once (`tests/governance/test_erasure_queries.py`
asserts the same count for a 2×2 B=1 and a 4×4 B=4 model). The I2 check starts from the
partial index on erased records (`record_erased`, migration 0004).

{_cost(data["machine"], flat, sizes)}

{_worker(data)}
"""  # fmt: skip


def _cost(machine: dict[str, Any], flat: dict[str, Any], sizes: list[int]) -> str:
    """Where the milliseconds go: statements × their time, and the rest (Python)."""
    entry = flat[str(sizes[0])]
    profile = entry.get("query_profile", {})
    steps = profile.get("steps", {})
    count = _statements(entry)
    if not count or not steps:
        return ""
    names = ("approve", "deactivate", "purge", "certify")
    sql = sum(steps[k]["sql_ms"] for k in names if k in steps)
    wall = sum(steps[k]["wall_ms"] for k in names if k in steps)
    p50_met = all(flat[str(n)]["approval_to_certificate"]["p50_ms"] <= 20 for n in sizes)
    p95_met = all(flat[str(n)]["approval_to_certificate"]["p95_ms"] <= 50 for n in sizes)
    parts = [f"p50 ≤ 20 ms is {'met' if p50_met else '**not met**'}",
             f"p95 ≤ 50 ms is {'met' if p95_met else '**not met**'}"]  # fmt: skip
    verdict = (
        f"Issue 16's target on this machine, at every size: {parts[0]}; {parts[1]}. "
        f"At {fmt(sql / count, 2)} ms a statement, {count} statements take "
        f"{fmt(sql, 0)} ms; the rest is Python: Django's ORM compiling each statement and "
        "building its rows, JSON and canonical encoding, the hash chain and the signature. "
        "Most statements are invariants' costs: the first audit append of a transaction "
        "is three (the chain's lock, its head, the insert) and each further one an insert "
        "(`services.audit.audit_chain_held` keeps the head for the transaction), each "
        "webhook event two (the event, the subscriptions that receive it), and every "
        "certificate carries a signed checkpoint of the trail (I6, I7)."
    )
    floor = profile.get("floor") or {}
    floor_text = ""
    if floor:
        least = count * floor["select_ms"] + floor["transactions"] * floor["commit_ms"]
        floor_text = (
            f" Measured in the same run on the same database: a bare `SELECT 1` costs "
            f"{fmt(floor['select_ms'], 2)} ms through Django and a one-row write transaction "
            f"{fmt(floor['commit_ms'], 1)} ms (its commit waits for the WAL flush), so "
            f"{count} statements and the {floor['transactions']} write transactions an "
            f"erasure needs (approval, deactivation, certificate: each must be durable before "
            f"the next step) cost at least {fmt(least, 0)} ms here with no work in them."
        )
    during = machine.get("load_1min_during", {}).get(f"C: {sizes[0]} start")
    load = f" (1-minute load average {fmt(during, 1)} on 2 cores)" if during else ""
    return (
        f"Where the time goes (the traced request at {sizes[0]:,} records): {count} "
        f"statements took {fmt(sql, 0)} ms of {fmt(wall, 0)} ms, "
        f"{fmt(sql / count, 2)} ms each on average; the rest is Python in this process"
        f"{load}.{floor_text} {verdict}{_erasure_prepared(entry)}"
    )


def _erasure_prepared(entry: dict[str, Any]) -> str:
    """The same-run series with prepared statements (opt-in), where the run measured it."""
    variant = entry.get("query_profile", {}).get("prepared")
    if not variant:
        return ""
    total = entry["approval_to_certificate"]
    on = variant["approval_to_certificate"]
    threshold = variant.get("database_options", {}).get("prepare_threshold", "–")
    return (
        f" With prepared statements (`DATABASE_PREPARE_THRESHOLD={threshold}`, opt-in; a "
        f"second fresh series in the same run) approval → certificate is {fmt(on['p50_ms'], 0)} / "
        f"{fmt(on['p95_ms'], 0)} ms p50 / p95, against {fmt(total['p50_ms'], 0)} / "
        f"{fmt(total['p95_ms'], 0)} ms by default ({times(total['p50_ms'] / on['p50_ms'])} "
        f"at p50)."
    )


def _worker(data: dict[str, Any]) -> str:
    worker = data.get("worker") or {}
    if not worker:
        return ""
    total = worker["approval_to_certificate"]
    flat = data["flatness"].get(str(worker["records"]), {})
    inproc = flat.get("approval_to_certificate", {}).get("p50_ms")
    ratio = f" ({times(total['p50_ms'] / inproc)} the in-process p50)" if inproc else ""
    return (
        f"**Through a real control worker** (part D, {worker['records']:,} records): the "
        f"approval's enqueue goes to `{worker['broker']}`, a separate `manage.py worker "
        f"--queues=control` process executes it, and the clock stops when the officer's "
        f"process reads `completed` (polled every {worker['poll_ms']} ms). Approval → "
        f"certificate p50 / p95: {fmt(total['p50_ms'], 0)} / {fmt(total['p95_ms'], 0)} ms "
        f"over {total['n']} requests{ratio}.{_handoff(worker)}"
    )


def _handoff(worker: dict[str, Any]) -> str:
    """The worker run split at the rows' own timestamps: hand-off, then execution."""
    pickup = worker.get("approved_to_worker_phase1")
    inside = worker.get("worker_phase1_to_certificate")
    if not pickup or not inside:
        return ""
    rest = worker["approval_to_certificate"]["p50_ms"] - pickup["p50_ms"] - inside["p50_ms"]
    return (
        f" Split by the timestamps the rows record (p50): approval → the worker's phase 1 "
        f"{fmt(pickup['p50_ms'], 0)} ms (the approval's commit, the broker, the worker's "
        f"wake-up and a new database connection: Celery closes it around every task), "
        f"phase 1 → the certificate's timestamp {fmt(inside['p50_ms'], 0)} ms, and about "
        f"{fmt(rest, 0)} ms for the certificate's transaction to commit and the officer's "
        "process to see it."
    )


def _bumps(flat: dict[str, Any], sizes: list[int]) -> str:
    """Say so when a middle size is slower in every step while the largest is not."""
    notes = []
    first, last = flat[str(sizes[0])], flat[str(sizes[-1])]

    def p50(entry: dict[str, Any], step: str) -> float:
        return float(entry[step]["p50_ms"])

    for n in sizes[1:-1]:
        entry = flat[str(n)]
        total = p50(entry, "approval_to_certificate") / p50(first, "approval_to_certificate")
        certify = p50(entry, "certify") / p50(first, "certify")
        at_last = p50(last, "approval_to_certificate") / p50(first, "approval_to_certificate")
        if total > 1.2 and certify > 1.2 and at_last < total:
            ms = entry["query_profile"]["deactivate_slowest_select"]["ms"]
            notes.append(
                f" The {n:,} row is {times(total)} the {sizes[0]:,} row, but signing the "
                f"certificate is {times(certify)} too, no deactivation query took more than "
                f"{fmt(ms, 1)} ms, and {sizes[-1]:,} records, ten times more, ran at "
                f"{times(at_last)}: that run was slower across the board (a shared VM), "
                "not its queries."
            )
    return "".join(notes)


def _plot(results: dict[str, Any], plots: Path) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    flat = results["erasure"]["flatness"]
    lineage = results["lineage"]["sizes"]
    es, ls = _sizes(flat), _sizes(lineage)
    left.plot(es, [flat[str(n)]["approval_to_certificate"]["p50_ms"] for n in es], "o-",
              label="erasure: approval → certificate p50")  # fmt: skip
    left.plot(es, [flat[str(n)]["deactivate"]["p50_ms"] for n in es], "s--",
              label="erasure: deactivate phase p50")  # fmt: skip
    left.plot(ls, [lineage[str(n)]["api"]["p50_ms"] for n in ls], "^-",
              label="lineage lookup (API) p50")  # fmt: skip
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("records in the database (log scale)")
    left.set_ylabel("milliseconds")
    left.set_title("Latency vs table size")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    growth = results["ingest"].get("growth") or []
    if growth:
        labels = [f"{g['from_records']:,}–\n{g['to_records']:,}" for g in growth]
        bars = right.bar(labels, [g["records_per_s"] for g in growth], color="#2b7bba")
        right.bar_label(bars, fmt="%.0f", fontsize=8)
        orm = results["ingest"]["passes"]["orm_bulk_create"]
        right.axhline(orm["records_per_s"], color="#777", linestyle=":",
                      label=f"ORM bulk_create floor ({orm['records']:,} records)")  # fmt: skip
        right.legend(fontsize=8, loc="lower right")
    right.set_xlabel("table size during the segment")
    right.set_ylabel("records per second")
    right.set_title("Ingestion through the API as the table grows")
    right.grid(True, axis="y", alpha=0.3)
    return save(fig, plots, "scale")
