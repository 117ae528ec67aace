"""docs/benchmarks.md is generated from bench/results/*.json; keep the two in step."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench import report

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
