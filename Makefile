# Developer entry points. `make test` is what CI runs (see .ci/run).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench report

install: $(STAMP)

# torch first and pinned: peft asks for a bare `torch`, and an unpinned resolve pulls a
# multi-GB CUDA build. The stamp keeps a repeated `make` quick until pyproject.toml changes.
$(STAMP): pyproject.toml lethe_client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[dev]" -e ./lethe_client
	touch $@

demo: install
	$(BIN)/python manage.py demo

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy unlearning celery_worker governance

# Every bench/bench_*.py script, in order (each writes bench/results/NAME.json), then the
# report: docs/benchmarks.md and its plots. About 50 minutes on the 2-vCPU machine kind; the
# ingest, lineage, erasure and capacity scripts need PostgreSQL (see their docstrings).
bench: install
	@set -e; found=0; \
	for script in bench/bench_*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; \
	[ $$found = 1 ] || { echo "no bench/bench_*.py scripts found" >&2; exit 1; }
	$(BIN)/python bench/report.py

# Rewrite docs/benchmarks.md and its plots from the results already in bench/results/.
report: install
	$(BIN)/python bench/report.py
