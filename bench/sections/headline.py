"""The headline figures against their targets: the rows of bench/results/summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import summary as headline
from bench.sections.common import fmt, md_table

ORDER = 3
TITLE = "Headline figures against their targets"
RESULTS = tuple(dict.fromkeys(figure.source for figure in headline.FIGURES))

_SIZE_NAMES = {"10000": "10k", "100000": "100k", "1000000": "1M"}


def reached(key: str, value: Any) -> str:
    """A figure's value as the table shows it: sizes spelled out, accuracies in percent."""
    if value is None:
        return "not measured"
    if isinstance(value, dict):
        return " · ".join(f"{_SIZE_NAMES.get(k, k)}: {reached(key, v)}" for k, v in value.items())
    if "accuracy" in key:
        return f"{100 * value:.1f} %"
    if key.startswith("mia_auc"):
        return f"{value:.3f}"
    if key.endswith("_ms") or "_ms_" in key:
        return f"{fmt(value, 1)} ms"
    return fmt(value)


def _met(met: bool | None) -> str:
    return "–" if met is None else ("yes" if met else "**no**")


def render(results: dict[str, Any], plots: Path) -> str:
    figures = headline.build(results)["figures"]
    rows = [
        [f"`{key}`", reached(key, entry["value"]), entry["target"], _met(entry["met"]),
         f"`{entry['source'].removeprefix('bench/results/')}`"]
        for key, entry in figures.items()
    ]  # fmt: skip
    table = md_table(["figure", "reached", "target", "met", "from"], rows)
    return f"""\
The figures a privacy or platform team asks about first, each read from the results file of
the script that measured it. The same rows, with the machine and settings of each, are in
`bench/results/summary.json` under these stable keys. Where a target is missed, the section
that measured it gives the measured cause.

{table}
"""
