"""Helpers shared by the report sections: markdown tables, number formatting, figures.

Every section module in this package defines ``ORDER`` (its place in the report), ``TITLE``,
``RESULTS`` (the stems of the ``bench/results/*.json`` files it reads) and
``render(results, plots) -> str``: the markdown body under its ``## TITLE`` heading.
``results`` maps each stem in ``RESULTS`` to the parsed JSON; ``plots`` is the folder for the
section's PNGs (``docs/benchmarks/``), referenced from the markdown as ``benchmarks/NAME.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# Plots are regenerated on every report run; no timestamp or version in the file keeps the
# PNGs byte-stable when the numbers do not change.
_PNG_METADATA = {"Software": None}


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: thousands separators, fixed decimals, "–" for missing values."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}"
    return str(value)


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage."""
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def times(value: float | None, digits: int = 2) -> str:
    """A ratio, written "3.10×"."""
    return "–" if value is None else f"{value:,.{digits}f}×"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells that are not strings go through ``fmt``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [cell if isinstance(cell, str) else fmt(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(width: float = 6.4, height: float = 3.8) -> tuple[Figure, Any]:
    """A new figure with one axes and a light grid."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(True, alpha=0.3)
    return fig, ax


def save(fig: Figure, plots: Path, name: str) -> str:
    """Write ``plots/NAME.png`` and return the markdown image link for docs/benchmarks.md."""
    plots.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(plots / f"{name}.png", dpi=110, metadata=_PNG_METADATA)
    plt.close(fig)
    return f"![{name}]({plots.name}/{name}.png)"
