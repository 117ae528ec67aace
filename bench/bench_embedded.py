"""Erasure latency on the embedded default: approval to certificate through a real worker.

The embedded default is SQLite plus Celery's file-system transport, which a worker polls:
a message waits up to one polling interval before the worker sees it. This script trains a
tiny model in process on a throw-away SQLite database, then for each polling interval
(``LETHE_BROKER_POLL_SECONDS``: kombu's default 1.0 s as the baseline, and Lethe's
default) starts a real ``manage.py worker --queues=control,default`` on the same folders
and approves ``--erasures`` requests one at a time, timing each from the approval call to
the request reading ``completed`` (its certificate signed). Both runs share the database,
the model and the machine; each erasure is for a subject with records in the model.

    python bench/bench_embedded.py [--erasures K]    # writes bench/results/embedded.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    CAPTURED,
    django_setup,
    generate_rows,
    ingest,
    machine_info,
    stats_ms,
    train,
    write_results,
)

POLLS = (1.0, 0.05)  # the baseline first: kombu's default interval, then Lethe's


def _worker(folder: Path, env: dict[str, str], poll: float) -> subprocess.Popen[bytes]:
    log = (folder / f"worker-{poll}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--queues=control,default", "--loglevel=info"],
        cwd=REPO,
        env={**os.environ, **env, "LETHE_BROKER_POLL_SECONDS": str(poll)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while " ready." not in (folder / f"worker-{poll}.log").read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"worker did not start:\n{(folder / f'worker-{poll}.log').read_text()}")
        time.sleep(0.2)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _erase(officer: Any, subject: str) -> float:
    from governance.models import ErasureRequest
    from governance.services.erasure import erasure_request_approve, erasure_request_create

    request, _ = erasure_request_create(actor=officer, subject_ref=subject, reason="bench")
    start = time.perf_counter()
    erasure_request_approve(actor=officer, request=request)
    deadline = start + 60
    while ErasureRequest.objects.filter(pk=request.pk).values_list("status", flat=True)[0] != (
        ErasureRequest.Status.COMPLETED
    ):
        if time.perf_counter() > deadline:
            sys.exit(f"erasure {request.pk} did not complete within 60 s")
        time.sleep(0.002)
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--erasures", type=int, default=12)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="lethe-embedded-"))
    env = {
        "LETHE_BROKER_DIR": str(folder / "broker"),
        "ARTIFACT_ROOT": str(folder / "artifacts"),
        "LETHE_SIGNING_KEY_PATH": str(folder / "keys" / "signing.pem"),
        "LETHE_AUDIT_KEY_PATH": str(folder / "keys" / "audit.key"),
        "LETHE_TORCH_THREADS": "1",
    }
    for sub in ("broker/queue", "broker/processed", "broker/control", "artifacts", "keys"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{folder / 'lethe.sqlite3'}"
    django_setup(database, **env)
    env["DATABASE_URL"] = database
    env["DEBUG"] = "false"
    env["SECRET_KEY"] = os.environ["SECRET_KEY"]

    from governance.models import Record
    from governance.services import training
    from governance.services.accounts import user_create_with_role
    from governance.services.training import ModelSpec

    training._enqueue = lambda ids: CAPTURED["tasks"].extend(ids)  # type: ignore[assignment]
    officer, _ = user_create_with_role(username="officer", role="privacy_officer")
    engineer, _ = user_create_with_role(username="engineer", role="ml_engineer")
    rows = [r.as_dict() for r in generate_rows(2000, seed=3)]
    dataset = ingest(rows, engineer, "embedded")
    spec = ModelSpec(
        name="embedded", dataset=dataset, base_model="tiny-bert", shards=2, slices=3,
        sequences=2, sequence_policy="cyclic", epochs=1, learning_rate=0.01, seed=1,
    )  # fmt: skip
    train(engineer, spec)
    subjects = iter(
        Record.objects.filter(dataset=dataset)
        .values_list("subject__external_ref", flat=True)
        .distinct()
        .order_by("subject__external_ref")
    )
    runs = []
    for poll in POLLS:
        worker = _worker(folder, env, poll)
        try:
            _erase(officer, next(subjects))  # warm-up: the worker's first task imports
            samples = [_erase(officer, next(subjects)) for _ in range(args.erasures)]
        finally:
            _stop(worker)
        runs.append({"polling_interval_s": poll, "erasures": len(samples), **stats_ms(samples)})
        print(runs[-1], flush=True)
    path = write_results(
        "embedded",
        {
            "machine": machine_info(postgres=False),
            "database": "SQLite (embedded default)",
            "broker": "Celery file-system transport",
            "model": {"base_model": "tiny-bert", "records": len(rows), "plan": "2x3, B=2"},
            "runs": runs,
            "speedup_p50": round(runs[0]["p50_ms"] / runs[1]["p50_ms"], 2),
            # The default interval's run is the embedded default's figure (issue 16's key).
            "summary": {"erasure_embedded_p50_ms": runs[-1]["p50_ms"]},
        },
    )
    print(f"bench_embedded: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
