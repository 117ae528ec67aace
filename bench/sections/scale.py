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
batch), against the floor of any ingest path: the ORM's `bulk_create` of the same rows with
no lookups or checks, each pass into empty tables.

{table}
"""
    growth = data.get("growth") or []
    if growth:
        rows = [
            [f"{g['from_records']:,} → {g['to_records']:,}", fmt(g["records_per_s"], 0),
             fmt(g["seconds"], 1),
             f"{fmt(g['batch']['p50_ms'], 0)} / {fmt(g['batch']['p95_ms'], 0)}",
             times(g["records_per_s"] / growth[0]["records_per_s"])]
            for g in growth
        ]  # fmt: skip
        last = growth[-1]["records_per_s"] / growth[0]["records_per_s"]
        verdict = (
            "Throughput holds as the table grows"
            if last >= 0.8
            else "Throughput falls as the table grows"
        )
        text += f"""
Growth: the same JSON batches into one table from empty to {growth[-1]["to_records"]:,}
records, throughput per segment of table size. {verdict}: the last segment runs at
{times(last)} the first one's rate. Not profiled here; the likely cause is index
maintenance (the unique indexes on each record's external id and subject reference, and
the subject index) once those indexes outgrow PostgreSQL's default 128 MB of shared
buffers. Ingestion is a batch path; the per-request latencies below are the ones that
must stay flat.

{md_table(["table size", "records/s", "seconds", "batch p50 / p95 ms", "× first segment"], rows)}
"""
    return text


def _lineage(data: dict[str, Any]) -> str:
    sizes = data["sizes"]
    rows = [
        [f"{int(n):,}", f"{entry['subjects']:,}",
         f"{fmt(entry['api']['p50_ms'], 1)} / {fmt(entry['api']['p95_ms'], 1)}",
         f"{fmt(entry['selector']['p50_ms'], 1)} / {fmt(entry['selector']['p95_ms'], 1)}",
         times(entry["api_over_selector_p50"]), entry["queries"]["api"]]
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
rendering). Under EXPLAIN ANALYZE at the largest size {scans}.

{md_table(["records", "subjects", "API p50 / p95 ms", "selector p50 / p95 ms",
           "API ÷ selector", "queries"], rows)}
"""  # fmt: skip


def _erasure(data: dict[str, Any]) -> str:
    flat = data["flatness"]
    sizes = _sizes(flat)
    rows = []
    for n in sizes:
        entry = flat[str(n)]
        deactivate = entry["deactivate"]
        total = entry["approval_to_certificate"]
        rows.append([f"{n:,}", f"{fmt(total['p50_ms'], 0)} / {fmt(total['p95_ms'], 0)}",
                     f"{fmt(deactivate['p50_ms'], 0)} / {fmt(deactivate['p95_ms'], 0)}",
                     fmt(entry["file"]["p50_ms"], 0), fmt(entry["certify"]["p50_ms"], 0),
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
    return f"""\
### Erasure latency (`bench/bench_erasure.py`, part C)

At each size the governance tables are rebuilt with COPY: N records, the same model shape
with 64 `trained` stages (the real stage files and digests of the trained model in
section 3), finished training tasks, real assignments and a published manifest; then 30
fresh erasures (3 warm-ups). One extra request runs with every SQL statement timed and
traced to the service line that issued it: the slowest SELECT of the deactivation phase
is shown with the function that issued it.

{md_table(["records", "approval → certificate p50 / p95 ms", "deactivate p50 / p95 ms",
           "filing p50 ms", "certify p50 ms", "slowest deactivate SELECT ms", "build s"],
          rows)}

{verdict} The erasure path touches the requested subject's records, the stages of the
slices that hold them and the small stage/manifest tables. The one query that used to
grow with the table — the I2 check looking for erased records, a sequential scan of the
record table that took 117 ms at 1M records when issue 4 measured it — now starts from the
partial index on erased records (`record_erased`, migration 0004).
"""  # fmt: skip


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
