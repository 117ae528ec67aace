"""The embedded default's erasure latency: how long an approval waits for the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, md_table

ORDER = 110
TITLE = "11. Erasure latency on the embedded default"
RESULTS = ("embedded",)


def summary(results: dict[str, Any]) -> list[str]:
    runs = results["embedded"]["runs"]
    return [
        f"**Embedded default** (SQLite, file-system broker, a real worker): approval to "
        f"certificate takes {fmt(runs[1]['p50_ms'], 0)} ms (p50) with the worker polling "
        f"every {runs[1]['polling_interval_s']} s, against {fmt(runs[0]['p50_ms'], 0)} ms "
        f"at kombu's default interval of {runs[0]['polling_interval_s']} s "
        f"({fmt(results['embedded']['speedup_p50'], 1)}x)."
    ]


def render(results: dict[str, Any], plots: Path) -> str:
    data = results["embedded"]
    table = md_table(
        ["polling interval (s)", "erasures", "p50 ms", "p95 ms", "mean ms"],
        [[r["polling_interval_s"], r["erasures"], fmt(r["p50_ms"], 1), fmt(r["p95_ms"], 1),
          fmt(r["mean_ms"], 1)]
         for r in data["runs"]],
    )  # fmt: skip
    model = data["model"]
    return f"""\
Script: `bench/bench_embedded.py`. {data['database']}, {data['broker']}, a real
`manage.py worker --queues=control,default` process; a {model['base_model']} model
({model['plan']}, {model['records']:,} records) trained in the script's process. Each
erasure is filed and approved in the script's process and timed from the approval call
to the request reading `completed` (its certificate signed by the worker), one at a
time, after one warm-up per worker. The baseline, kombu's default polling interval, runs
in the same script on the same database:

{table}

A file-system broker has no way to wake a consumer: the worker lists its queue folder
once per interval, so an approved erasure waits on average half an interval and at
most one before execution starts. `LETHE_BROKER_POLL_SECONDS` (default 0.05) sets it;
Redis and RabbitMQ push messages and do not poll.
"""  # fmt: skip
