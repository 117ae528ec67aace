"""The headline figures under stable keys: ``bench/results/summary.json``.

Each figure is read from the results file of the script that measured it (that file's
``summary`` object), next to its target, whether the target is met, and the machine and
settings it was measured with. Nothing here measures anything: ``python bench/report.py``
writes this file together with docs/benchmarks.md, whose "Headline figures" section renders
the same rows (``bench/sections/headline.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIZES = ("10000", "100000", "1000000")


def _all_at_most(limit: float) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        values = value.values() if isinstance(value, dict) else [value]
        return all(v is not None and v <= limit for v in values)

    return check


def _at_least(limit: float) -> Callable[[Any], bool]:
    return lambda value: value is not None and value >= limit


def _flat_and_at_most(limit: float, flat: float) -> Callable[[Any], bool]:
    """Every size at most ``limit`` and the largest size within ``flat`` of the smallest."""

    def check(value: Any) -> bool:
        if not isinstance(value, dict) or any(value.get(size) is None for size in SIZES):
            return False
        return _all_at_most(limit)(value) and value[SIZES[-1]] / value[SIZES[0]] <= flat

    return check


@dataclass(frozen=True)
class Figure:
    key: str
    source: str  # the results file's stem (bench/bench_SOURCE.py writes it)
    target: str  # in words, as the issue states it
    check: Callable[[Any], bool] | None = None  # None: a reference figure, no target
    relative_to: str | None = None  # a key whose value the check subtracts first


FIGURES = (
    Figure("erasure_p50_ms", "erasure", "≤ 20 ms at every size, 1M ÷ 10k ≤ 1.2",
           _flat_and_at_most(20.0, 1.2)),
    Figure("erasure_p95_ms", "erasure", "≤ 50 ms at every size", _all_at_most(50.0)),
    Figure("erasure_worker_p50_ms", "erasure", "≤ 100 ms", _all_at_most(100.0)),
    Figure("erasure_embedded_p50_ms", "embedded", "≤ 500 ms", _all_at_most(500.0)),
    Figure("erasure_sql_statements", "erasure",
           "constant in records and stages (asserted by tests/governance/test_erasure_queries.py)"),
    Figure("lineage_p95_ms_1m", "lineage", "≤ 5 ms", _all_at_most(5.0)),
    Figure("ingest_per_s_100k", "ingest", "≥ 20,000 records/s", _at_least(20_000)),
    Figure("ingest_growth_ratio", "ingest", "≥ 0.9", _at_least(0.9)),
    Figure("retrain_compute_vs_sisa", "utility", "≤ 0.7×", _all_at_most(0.7)),
    Figure("accuracy_full", "accuracy",
           "reference: one LoRA fine-tune on all data, the same epochs setting (1)"),
    Figure("accuracy_full_matched_compute", "accuracy",
           "reference: the same fine-tune given S3T m=2's example-epochs"),
    Figure("accuracy_s3t_m2", "accuracy", "within 2 points of accuracy_full",
           _at_least(-0.02), relative_to="accuracy_full"),
    Figure("demo_accuracy_before", "demo", "≥ 87 %", _at_least(0.87)),
    Figure("demo_accuracy_after", "demo", "≥ 85 %", _at_least(0.85)),
    Figure("mia_auc_before", "accuracy", "reference: before the erasure"),
    Figure("mia_auc_after", "accuracy",
           "equal to mia_auc_never_trained_same_serving (exact unlearning)"),
    Figure("mia_auc_never_trained", "accuracy",
           "reference: a model never trained on them, serving another sequence"),
    Figure("mia_auc_never_trained_same_serving", "accuracy",
           "equal to mia_auc_after: the same training without them, served as after the erasure"),
)  # fmt: skip


def _machine(data: dict[str, Any]) -> dict[str, Any]:
    machine = data.get("machine", {})
    keep = ("cpu_count", "cpu_model", "machine", "processor", "device", "threads", "postgres")
    return {key: machine[key] for key in keep if key in machine}


def build(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every figure of ``FIGURES`` from ``results`` (stem → parsed results file)."""
    values = {
        figure.key: results.get(figure.source, {}).get("summary", {}).get(figure.key)
        for figure in FIGURES
    }
    figures: dict[str, Any] = {}
    for figure in FIGURES:
        data = results.get(figure.source)
        value = values[figure.key]
        entry: dict[str, Any] = {"value": value, "target": figure.target, "met": None}
        if figure.check is not None:
            compared = value
            if figure.relative_to is not None:
                base = values[figure.relative_to]
                compared = None if value is None or base is None else value - base
            entry["met"] = figure.check(compared) if compared is not None else False
        entry["source"] = f"bench/results/{figure.source}.json"
        if data is None:
            entry["missing"] = f"run bench/bench_{figure.source}.py"
        else:
            entry["command"] = data.get("command")
            entry["generated_at"] = data.get("generated_at")
            entry["settings"] = data.get("settings", {})
            entry["machine"] = _machine(data)
        figures[figure.key] = entry
    first = next((data for data in results.values() if "machine" in data), {})
    return {
        "about": "Headline figures of bench/results (bench/summary.py, bench/report.py)",
        "machine": first.get("machine", {}),
        "figures": figures,
    }
