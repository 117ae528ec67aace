"""The product demo's held-out accuracy before and after its erasure, as `make demo` runs it.

Runs ``governance.demo.run_demo`` (what ``manage.py demo --no-serve`` runs) with the default
``DemoConfig`` on the embedded default (SQLite, file-system broker, local artifacts) in a
fresh temporary folder, and records what it measured: held-out accuracy before and after
the erasure, whether the certificate's signature and claims verified, and its wall time.
The baseline is the demo's own model before its erasure, in the same run.

    python bench/bench_demo.py          # writes bench/results/demo.json (about 3-4 minutes)
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import django_setup, machine_info, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="lethe-demo-bench-"))
    for sub in ("broker/queue", "broker/processed", "broker/control", "artifacts", "keys"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    django_setup(
        f"sqlite:///{folder / 'lethe.sqlite3'}",
        LETHE_BROKER_DIR=str(folder / "broker"),
        ARTIFACT_ROOT=str(folder / "artifacts"),
        LETHE_SIGNING_KEY_PATH=str(folder / "keys" / "signing.pem"),
        LETHE_AUDIT_KEY_PATH=str(folder / "keys" / "audit.key"),
    )
    from dataclasses import asdict

    from governance.demo import run_demo
    from unlearning.demo_config import DemoConfig

    config = DemoConfig()
    start = time.perf_counter()
    result = run_demo(config=config, out=io.StringIO(), state_dir=folder)
    wall = time.perf_counter() - start
    before, after = result.accuracy_before, result.accuracy_after
    print(f"demo: accuracy {before} before, {after} after; signature ok {result.signature_ok}")
    path = write_results(
        "demo",
        {
            "machine": machine_info(postgres=False),
            "settings": asdict(config),
            "database": "SQLite (embedded default)",
            "trained": result.trained,
            "signature_ok": result.signature_ok,
            "wall_s": round(wall, 1),
            "summary": {"demo_accuracy_before": before, "demo_accuracy_after": after},
        },
    )
    print(f"bench_demo: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
