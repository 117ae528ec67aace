"""Webhook fan-out: from an erasure's completion to delivery at each subscriber."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, md_table

ORDER = 90
TITLE = "9. Webhook fan-out"
RESULTS = ("webhooks",)


def _pair(stats: dict[str, float]) -> str:
    return f"{fmt(stats['p50_ms'], 0)} / {fmt(stats['p95_ms'], 0)}"


def summary(results: dict[str, Any]) -> list[str]:
    fanouts = results["webhooks"]["fanouts"]
    widest = fanouts[-1]
    return [
        f"**Webhooks**: the first subscriber hears of a completed erasure "
        f"{fmt(fanouts[0]['first_delivery']['p50_ms'], 0)} ms after it completes (p50, one "
        f"subscription); {widest['subscriptions']} subscriptions are all delivered in "
        f"{fmt(widest['all_delivered']['p50_ms'] / 1000, 2)} s by one worker "
        f"({fmt(widest['deliveries_per_s'], 0)} deliveries/s)."
    ]


def render(results: dict[str, Any], plots: Path) -> str:
    data = results["webhooks"]
    table = md_table(
        ["subscriptions", "erasures", "first delivery p50 / p95 ms",
         "all delivered p50 / p95 ms", "deliveries / s (one worker)"],
        [[f["subscriptions"], f["erasures"], _pair(f["first_delivery"]),
          _pair(f["all_delivered"]),
          "—" if f["deliveries_per_s"] is None else fmt(f["deliveries_per_s"], 1)]
         for f in data["fanouts"]],
    )  # fmt: skip
    return f"""\
Script: `bench/bench_webhooks.py`. Broker: {data['broker']}; worker: {data['worker']};
receiver: {data['receiver']}. Each erasure is filed, approved and executed in the
benchmark process; the clock runs from the request's `completed_at` to the time each
signed `erasure_request.completed` delivery reaches the receiver:

{table}

One solo worker delivers one request at a time, so the time for all deliveries grows
with the number of subscriptions; more `webhooks` workers divide it.
"""  # fmt: skip
