"""docs/benchmarks.md is generated from bench/results/*.json; keep the two in step."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench import report, summary

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
PAGE = REPO / "docs" / "benchmarks.md"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("report") / "benchmarks.md"
    return report.render(RESULTS, out), out


def test_every_section_renders_from_the_committed_results(rendered: tuple[str, Path]) -> None:
    page, _ = rendered
    for module in report.sections():
        assert f"## {module.TITLE}\n" in page
    assert "Not measured yet" not in page, "a section's results file is missing"


def test_every_plot_link_points_to_a_png_that_was_written(rendered: tuple[str, Path]) -> None:
    page, out = rendered
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert links, "the page has no plots"
    for link in links:
        path = out.parent / link
        assert path.read_bytes().startswith(PNG_MAGIC), link


def test_the_committed_page_matches_the_committed_results(rendered: tuple[str, Path]) -> None:
    page, _ = rendered
    assert PAGE.read_text() == page, "docs/benchmarks.md is stale: run `make report`"


def test_a_missing_results_file_names_the_script_to_run(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    # Everything but the erasure results: sections reading them must say what to run.
    for path in RESULTS.glob("*.json"):
        if path.stem != "erasure":
            shutil.copy(path, folder / path.name)
    page = report.render(folder, tmp_path / "benchmarks.md")
    assert "Not measured yet: run `bench/bench_erasure.py`" in page
    assert "## Machine and runs" in page


def test_every_results_file_records_its_machine() -> None:
    for path in RESULTS.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["machine"]["cpu_count"] >= 1, path.name


def test_the_committed_summary_matches_the_committed_results() -> None:
    committed = json.loads((RESULTS / "summary.json").read_text())
    assert committed == summary.build(report.load_results(RESULTS)), (
        "bench/results/summary.json is stale: run `make report`"
    )


def test_summary_marks_a_missed_target_and_a_missing_file() -> None:
    results = {
        "erasure": {
            "machine": {"cpu_count": 2},
            "summary": {
                "erasure_p50_ms": {"10000": 10.0, "100000": 11.0, "1000000": 19.0},
                "erasure_p95_ms": {"10000": 30.0, "100000": 60.0, "1000000": 40.0},
            },
        },
        "accuracy": {"summary": {"accuracy_full": 0.88, "accuracy_s3t_m2": 0.865}},
    }
    figures = summary.build(results)["figures"]
    # 19 ms is under 20 but 1.9x the 10k figure: not flat.
    assert figures["erasure_p50_ms"]["met"] is False
    assert figures["erasure_p95_ms"]["met"] is False  # 60 ms at 100k
    assert figures["accuracy_s3t_m2"]["met"] is True  # 1.5 points below the full fine-tune
    assert figures["accuracy_full"]["met"] is None  # a reference, no target
    assert figures["lineage_p95_ms_1m"]["missing"] == "run bench/bench_lineage.py"
    assert figures["lineage_p95_ms_1m"]["met"] is False
    results["erasure"]["summary"]["erasure_p50_ms"]["1000000"] = 11.5
    assert summary.build(results)["figures"]["erasure_p50_ms"]["met"] is True
