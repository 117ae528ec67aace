"""Load: sustained erasure filing with approvals, and concurrent ingest, on the production
stack (gunicorn + PostgreSQL + Redis + the supervised worker) over loopback.

Set-up (untimed): a fresh database (``DATABASE_URL``, default ``lethe_bench_load`` on the
local PostgreSQL; ``lethe_bench*`` names only, dropped and recreated), a private
redis-server, gunicorn (``--web-workers`` x ``--threads``, default 4 x 4) and
``manage.py worker``; ``--subjects`` subjects (default 3,000) with two records each are
ingested over HTTP. Then for ``--seconds`` (60) ``--filers`` client threads (8) each loop:
file a request for the next subject (``POST /erasure-requests/`` with an Idempotency-Key)
and approve it as an officer (``POST .../approve/``), while ``--ingesters`` threads (1) post
batches of 50 new records to another dataset. Bounded: at most one request per subject.

Reported: accepted filings per second and the latency of filings, approvals and ingest
batches (p50, p95, p99, client-side, over keep-alive connections); then, with the load
stopped, how long the worker takes to complete every approved request, and the requests
lost (accepted but not completed within 300 s) or duplicated (two rows for one key, two
certificates for one request).

Writes bench/results/load.json. Usage: python bench/bench_load.py [--seconds 60]
       [--filers 8] [--ingesters 1] [--subjects 3000] [--web-workers 4] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness, stack

LABELS = ["billing", "technical", "account", "shipping", "returns", "feedback"]
API = "/api/v1"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lethe_bench_load"


def percentiles(samples_s: list[float]) -> dict[str, float | int | None]:
    if not samples_s:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(s * 1000 for s in samples_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 1),
    }


def _rows(prefix: str, start: int, count: int, per_subject: int) -> list[dict[str, str]]:
    return [
        {
            "external_id": f"{prefix}-{i}-r{k}",
            "subject_id": f"{prefix}-{i}",
            "text": f"ticket {k} from customer {i}: where is my parcel",
            "label": LABELS[(i + k) % len(LABELS)],
        }
        for i in range(start, start + count)
        for k in range(per_subject)
    ]


class Load:
    def __init__(self, port: int, keys: dict[str, str], subjects: list[str]) -> None:
        self.port, self.keys = port, keys
        self.subjects = subjects
        self.next = 0
        self.lock = threading.Lock()
        self.stop_at = 0.0
        self.file_s: list[float] = []
        self.approve_s: list[float] = []
        self.ingest_s: list[float] = []
        self.accepted: dict[str, int] = {}
        self.approved = 0
        self.errors: dict[str, int] = {}
        self.ingested_rows = 0

    def _error(self, what: str, status: int) -> None:
        with self.lock:
            key = f"{what} {status}"
            self.errors[key] = self.errors.get(key, 0) + 1

    def filer(self) -> None:
        filer = stack.Http(self.port, self.keys["filer"])
        officer = stack.Http(self.port, self.keys["officer"])
        while time.monotonic() < self.stop_at:
            with self.lock:
                if self.next >= len(self.subjects):
                    return
                n, self.next = self.next, self.next + 1
            subject = self.subjects[n]
            body = {"subject_id": subject, "reason": "Art. 17"}
            headers = {"Idempotency-Key": f"load-{n}"}
            status, data, took = filer.request("POST", f"{API}/erasure-requests/", body, headers)
            if status != 201:
                self._error("file", status)
                continue
            self.file_s.append(took)
            self.accepted[subject] = data["id"]
            status, data, took = officer.request(
                "POST", f"{API}/erasure-requests/{data['id']}/approve/", {}
            )
            if status not in (200, 202):
                self._error("approve", status)
                continue
            self.approve_s.append(took)
            with self.lock:
                self.approved += 1

    def ingester(self, dataset: int, index: int) -> None:
        client = stack.Http(self.port, self.keys["filer"])
        start = 0
        while time.monotonic() < self.stop_at:
            rows = _rows(f"ingest{index}", start, 25, 2)
            start += 25
            status, _, took = client.request("POST", f"{API}/datasets/{dataset}/records/", rows)
            if status not in (200, 201):
                self._error("ingest", status)
                continue
            self.ingest_s.append(took)
            with self.lock:
                self.ingested_rows += len(rows)


def _dataset(client: stack.Http, name: str) -> int:
    status, data, _ = client.request("POST", f"{API}/datasets/", {"name": name, "labels": LABELS})
    assert status == 201, data
    return int(data["id"])


def _drain(ids: set[int], timeout: float) -> tuple[float | None, dict[str, int]]:
    from django.db import close_old_connections
    from django.db.models import Count

    from governance.models import ErasureRequest

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        close_old_connections()
        done = ErasureRequest.objects.filter(pk__in=ids, status="completed").count()
        if done == len(ids):
            return time.monotonic() - started, {"completed": done}
        time.sleep(0.5)
    statuses = (
        ErasureRequest.objects.filter(pk__in=ids).values_list("status").annotate(n=Count("id"))
    )
    return None, dict(statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--filers", type=int, default=8)
    parser.add_argument("--ingesters", type=int, default=1)
    parser.add_argument("--subjects", type=int, default=3000)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    db_url = harness.postgres_url()
    harness.recreate_postgres(db_url)
    folder = Path(tempfile.mkdtemp(prefix="lethe-load-"))
    redis = stack.Redis(folder / "redis")
    services: list[stack.Service] = []
    try:
        redis.start()
        env = stack.stack_env(folder, db_url, redis.url)
        os.environ["CELERY_BROKER_URL"] = redis.url
        harness.django_setup(db_url, **{k: env[k] for k in ("LETHE_AUDIT_KEY", "ARTIFACT_ROOT")})
        made = stack.tokens(db_url, filer="integration", officer="privacy_officer")
        web = stack.gunicorn(env, folder, workers=args.web_workers, threads=args.threads)
        worker = stack.worker(env, folder)
        services = [web, worker]
        for service in services:
            service.start()
        stack.wait_port(web.port)
        setup = stack.Http(web.port, made["filer"], timeout=120)
        target = _dataset(setup, "load-subjects")
        for start in range(0, args.subjects, 500):
            rows = _rows("subject", start, min(500, args.subjects - start), 2)
            status, data, _ = setup.request("POST", f"{API}/datasets/{target}/records/", rows)
            assert status in (200, 201), data
        stream = _dataset(setup, "load-stream")
        subjects = [f"subject-{i}" for i in range(args.subjects)]
        load = Load(web.port, {"filer": made["filer"], "officer": made["officer"]}, subjects)
        threads = [threading.Thread(target=load.filer) for _ in range(args.filers)]
        threads += [
            threading.Thread(target=load.ingester, args=(stream, i)) for i in range(args.ingesters)
        ]
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        load.stop_at = started + args.seconds
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        load_during = os.getloadavg()[0]
        ids = set(load.accepted.values())
        drain_s, statuses = _drain(ids, timeout=300)
        from governance.models import ErasureRequest

        completed = ErasureRequest.objects.filter(pk__in=ids, status="completed").count()
        result: dict[str, Any] = {
            "stack": f"gunicorn {args.web_workers}x{args.threads} (gthread) + manage.py worker "
            "+ redis-server + PostgreSQL, loopback",
            "seconds": round(elapsed, 1),
            "filers": args.filers,
            "ingesters": args.ingesters,
            "accepted_filings": len(ids),
            "filings_per_s": round(len(ids) / elapsed, 1),
            "approvals": load.approved,
            "approvals_per_s": round(load.approved / elapsed, 1),
            "ingested_rows": load.ingested_rows,
            "ingest_rows_per_s": round(load.ingested_rows / elapsed, 1),
            "filing": percentiles(load.file_s),
            "approval": percentiles(load.approve_s),
            "ingest_batch_50": percentiles(load.ingest_s),
            "errors": load.errors,
            "drain_s": round(drain_s, 1) if drain_s is not None else None,
            "completed": completed,
            "lost": len(ids) - completed,
            "duplicated": stack.duplicated(list(load.accepted), ids),
            "statuses_if_not_drained": statuses if drain_s is None else {},
            # The 1-minute load average before the run and at its end: the machine is
            # shared, and the rate follows what else runs on its CPUs.
            "load_average": {"before": round(load_before, 2), "end": round(load_during, 2)},
            "machine": harness.machine_info(postgres=True),
        }
        harness.write_results("load", result)
        print({k: v for k, v in result.items() if k != "machine"})
    finally:
        for service in reversed(services):
            service.stop()
        redis.stop()
        stack.cleanup(folder)
        harness.recreate_postgres(db_url)  # leave no bench data behind (empty database)


if __name__ == "__main__":
    main()
