"""One module per section of docs/benchmarks.md; see bench/report.py for the contract."""
