"""Write docs/benchmarks.md and its plots from bench/results/*.json.

Each section of the page is a module in ``bench/sections`` (see ``bench/sections/common.py``
for the contract): it reads the results files it names and returns markdown, drawing its
plots into ``docs/benchmarks/``. Nothing here measures anything; every number on the page
comes from a results file, and a section whose file is missing says which script to run.

It also writes ``bench/results/summary.json``, the headline figures under stable keys
(``bench/summary.py``).

Usage: python bench/report.py [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import summary  # noqa: E402
from bench.sections.common import md_table  # noqa: E402

SUMMARY = "summary"

HEADER = """\
# Benchmarks

Lethe's claims, measured on this project's CPU machine against the alternatives a privacy
or ML team would otherwise use: retraining from scratch, SISA-style sharding (one full
model per shard, retrained after each deletion), and one model fine-tuned on everything.
Every comparison runs its baseline in the same script, on the same data and settings, and
reports the ratio next to the absolute numbers.

This page is generated: `make bench` runs every `bench/bench_*.py` script (each writes
`bench/results/NAME.json`) and then `python bench/report.py`, which writes this page and
the plots in `docs/benchmarks/`. To refresh one section, run its script and the report.
Single runs on a shared 2-vCPU VM: absolute timings move by ±20 % between runs and by up to
1.5× between machines of this kind, so compare the ratios, which are measured within one
run; accuracies and capacities are deterministic for a given seed.
"""


def sections() -> list[ModuleType]:
    """Every section module, in report order."""
    package = importlib.import_module("bench.sections")
    found = [
        importlib.import_module(f"bench.sections.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if info.name != "common"
    ]
    return sorted(found, key=lambda module: (module.ORDER, module.__name__))


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    """Every results file but ``summary.json``, which is derived from the others."""
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted(folder.glob("*.json"))
        if path.stem != SUMMARY
    }


def write_summary(folder: Path) -> Path:
    """``summary.json``: the headline figures of ``folder``'s results (``bench/summary.py``)."""
    path = folder / f"{SUMMARY}.json"
    path.write_text(json.dumps(summary.build(load_results(folder)), indent=2) + "\n")
    return path


def _machine_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for stem, data in results.items():
        machine = data.get("machine", {})
        libraries = machine.get("libraries", {})
        postgres = machine.get("postgres", "")
        rows.append(
            [
                f"`{stem}.json`",
                data.get("generated_at", "–"),
                f"`{data['command']}`" if "command" in data else "–",
                str(machine.get("cpu_count", "–")),
                str(machine.get("threads", "–")),
                libraries.get("torch", "–"),
                postgres.split(" on ")[0] if postgres else "–",
            ]
        )
    return rows


def render(folder: Path, out: Path) -> str:
    """The whole page; plots go next to ``out`` in a folder named after it."""
    results = load_results(folder)
    plots = out.parent / out.stem
    parts = [HEADER]
    summaries: list[str] = []
    bodies: list[str] = []
    for module in sections():
        missing = [stem for stem in module.RESULTS if stem not in results]
        bodies.append(f"## {module.TITLE}\n")
        if missing:
            scripts = ", ".join(f"`bench/bench_{stem}.py`" for stem in missing)
            bodies.append(f"Not measured yet: run {scripts}, then `python bench/report.py`.\n")
            continue
        mine = {stem: results[stem] for stem in module.RESULTS}
        bodies.append(module.render(mine, plots).rstrip() + "\n")
        if hasattr(module, "summary"):
            summaries.extend(f"- {line}" for line in module.summary(mine))
    if summaries:
        parts.append("## At a glance\n\n" + "\n".join(summaries) + "\n")
    parts.extend(bodies)
    header = ["results file", "written (UTC)", "command", "CPUs", "torch threads", "torch"]
    table = md_table([*header, "PostgreSQL"], _machine_rows(results))
    parts.append(f"## Machine and runs\n\n{_machine_block(results)}\n\n{table}\n")
    return "\n".join(parts)


def _machine_block(results: dict[str, dict[str, Any]]) -> str:
    machines = [data["machine"] for data in results.values() if "machine" in data]
    if not machines:
        return "No results yet."
    first = machines[0]
    libraries = ", ".join(f"{k} {v}" for k, v in first.get("libraries", {}).items())
    env = ", ".join(f"`{k}={v}`" for k, v in first.get("env", {}).items())
    return (
        f"{first.get('cpu_count', '?')} vCPU {first.get('machine', '')} "
        f"({first.get('processor', 'unknown')}), Python {first.get('python', '?')}, "
        f"{libraries}; device {first.get('device', 'cpu')}, CPU capability "
        f"{first.get('cpu_capability', '?')}, replay pins {env}. Per-file settings "
        "(threads, database) are below and in each JSON file."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    print(f"wrote {write_summary(args.results)}")
    page = render(args.results, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
