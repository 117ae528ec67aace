"""Webhook fan-out: time from an erasure's completion to its delivery at 1, 10 and 100
subscriptions, and the deliveries per second of one worker, on PostgreSQL and Redis.

One real Celery worker (``celery worker -Q webhooks --pool=solo``: one process, one
delivery at a time) consumes the ``webhooks`` queue from Redis; a real HTTP receiver on
loopback (``http.server``, threaded) answers 200 and notes when each delivery arrived.
This process files, approves and executes erasures through the services (execution in
process, as ``bench_erasure`` does; no control worker), so each completion commits its
``erasure_request.completed`` event and the deliveries are queued on that commit.

For each fan-out N, N subscriptions to ``erasure_request.completed`` are made and R
erasures run one after the other, each waiting until all N deliveries arrived. Latency
is arrival time minus the request's ``completed_at`` (both this machine's clock): the
first delivery and the last (all N). Throughput: the N deliveries of an erasure over the
time from the first to the last arrival, the worker's steady rate.

Writes bench/results/webhooks.json. The script drops and recreates the database named by
DATABASE_URL (only ``lethe_bench*`` names; default .../lethe_bench_webhooks) and uses the
Redis database in ``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/7), which it flushes.

Usage: python bench/bench_webhooks.py [--fanouts 1,10,100] [--erasures 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    capture_enqueues,
    django_setup,
    machine_info,
    postgres_url,
    print_table,
    recreate_postgres,
    stats_ms,
    write_results,
)

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/lethe_bench_webhooks"
WAIT_S = 120.0


class Arrivals:
    """Wall-clock arrival times per webhook-id, filled by the receiver's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[tuple[str, float]] = []

    def add(self, event_id: str) -> None:
        with self.lock:
            self.times.append((event_id, time.time()))

    def of(self, event_id: str) -> list[float]:
        with self.lock:
            return sorted(t for e, t in self.times if e == event_id)


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrivals.add(self.headers.get("webhook-id", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "celery_worker.celery", "worker",
        "-Q", "webhooks", "--pool=solo", "--concurrency=1", "-l", "warning",
        "-n", "bench-webhooks@%h",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env)


def wait_for(event_id: str, count: int, arrivals: Arrivals) -> list[float]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        got = arrivals.of(event_id)
        if len(got) >= count:
            return got
        time.sleep(0.002)
    raise SystemExit(f"only {len(arrivals.of(event_id))} of {count} deliveries arrived")


def one_erasure(officer: Any, subject: str, fanout: int, arrivals: Arrivals) -> dict[str, float]:
    """File, approve and execute an erasure; wait for its N completed deliveries."""
    from governance.models import WebhookEvent
    from governance.services import erasure, erasure_execution

    request, _ = erasure.erasure_request_create(actor=officer, subject_ref=subject)
    erasure.erasure_request_approve(actor=officer, request=request)
    erasure_execution.erasure_request_execute(request_id=request.pk)
    event = WebhookEvent.objects.get(
        type="erasure_request.completed", payload__data__request_id=request.pk
    )
    request.refresh_from_db()
    got = wait_for(event.event_id, fanout, arrivals)
    done = request.completed_at.timestamp()
    spread = got[-1] - got[0]
    return {
        "first_ms": (got[0] - done) * 1000,
        "all_ms": (got[-1] - done) * 1000,
        "per_s": (fanout - 1) / spread if fanout > 1 and spread > 0 else 0.0,
    }


def run_fanout(
    officer: Any, url: str, fanout: int, erasures: int, arrivals: Arrivals
) -> dict[str, Any]:
    from governance.models import WebhookSubscription
    from governance.services.webhooks import webhook_create

    WebhookSubscription.objects.all().delete()
    for n in range(fanout):
        webhook_create(actor=officer, url=f"{url}?n={n}", event_types=["erasure_request.completed"])
    samples = [
        one_erasure(officer, f"bench-{fanout}-{i}", fanout, arrivals) for i in range(erasures)
    ]
    rates = [s["per_s"] for s in samples if s["per_s"]]
    return {
        "subscriptions": fanout,
        "erasures": erasures,
        "first_delivery": stats_ms([s["first_ms"] for s in samples]),
        "all_delivered": stats_ms([s["all_ms"] for s in samples]),
        "deliveries_per_s": round(sum(rates) / len(rates), 1) if rates else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fanouts", default="1,10,100")
    parser.add_argument("--erasures", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 erasures per fan-out")
    args = parser.parse_args()
    erasures = 2 if args.quick else args.erasures
    fanouts = [int(n) for n in args.fanouts.split(",")]

    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE)
    database = postgres_url()
    recreate_postgres(database)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
    keys = tempfile.mkdtemp(prefix="lethe-bench-webhooks-")
    env = {
        "CELERY_BROKER_URL": redis_url,
        "LETHE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "LETHE_SIGNING_KEY_PATH": f"{keys}/signing.pem",
        "LETHE_AUDIT_KEY_PATH": f"{keys}/audit.key",
        "LETHE_SECRET_KEY_PATH": f"{keys}/secret.key",
        "LETHE_LOG_LEVEL": "WARNING",
    }
    django_setup(database, **env)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    capture_enqueues()  # executions run here, not on a control worker

    from governance.permissions import Role
    from governance.services.accounts import user_create_with_role

    officer, _ = user_create_with_role(username="bench-officer", role=Role.PRIVACY_OFFICER)
    arrivals = Arrivals()
    server = receiver(arrivals)
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    worker = start_worker({**os.environ, **env})
    try:
        run_fanout(officer, url, 1, 1, arrivals)  # warm-up: the worker is up and connected
        results = [run_fanout(officer, url, n, erasures, arrivals) for n in fanouts]
    finally:
        worker.terminate()
        worker.wait(30)
        server.shutdown()

    print_table(
        "Webhook fan-out: erasure completed -> delivered (one worker, solo pool)",
        ["subscriptions", "first p50 ms", "all p50 ms", "all p95 ms", "deliveries/s"],
        [
            [r["subscriptions"], r["first_delivery"]["p50_ms"], r["all_delivered"]["p50_ms"],
             r["all_delivered"]["p95_ms"], r["deliveries_per_s"]]
            for r in results
        ],
    )  # fmt: skip
    path = write_results(
        "webhooks",
        {
            "machine": machine_info(postgres=True),
            "broker": "redis",
            "worker": "celery worker -Q webhooks --pool=solo (one process)",
            "receiver": "http.server ThreadingHTTPServer on loopback, answers 200",
            "fanouts": results,
        },
    )
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
