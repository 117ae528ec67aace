"""Faults: erasures through a worker SIGKILL, a 20 s broker outage and a database restart.

The stack is the production one on loopback (bench/stack.py): a private PostgreSQL
cluster the script creates with initdb on its own port, a private redis-server (append
only), gunicorn (4 workers x 4 threads) and ``manage.py worker`` (supervised control
worker). Each scenario files ``--requests`` erasure requests over HTTP at a steady pace,
one per subject (each with three ingested records), approving each as an officer, and
injects its fault while they flow:

- ``worker_sigkill``: the control worker is SIGKILLed once a third of the requests are
  approved (erasures are in flight); its supervisor restarts it.
- ``broker_down``: redis-server is stopped for ``--outage`` seconds (20), then started again
  on the same port; approvals meanwhile answer 202 (execution pending).
- ``database_restart``: ``pg_ctl restart -m fast`` equivalent (stop, 5 s down, start).

The client behaves as a data platform should: it sends an ``Idempotency-Key`` with every
filing and repeats a request that got no answer or a 5xx after 0.5 s; an approval that
answers 409 was already recorded. Nobody intervenes by hand. Reported per scenario:
filed (distinct requests acknowledged), completed, duplicated (more than one request row
per key, or more than one certificate or ``erasure.completed`` event per request), lost
(acknowledged but not completed within 120 s of the fault ending), and the recovery time
(the fault's end to the completion of the last request approved before it ended), the
time until processing resumed (the fault's end to the first completion after it), and
the time until the health endpoint answered 200 again.

Writes bench/results/faults.json. Everything lives in a temporary folder removed at the end.
Usage: python bench/bench_faults.py [--requests 40] [--outage 20] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness, stack

LABELS = ["billing", "technical", "account", "shipping", "returns", "feedback"]
API = "/api/v1"
SETTLE_S = 120.0


def _retrying(client: stack.Http, method: str, path: str, body: Any, **headers: str) -> tuple:
    """Repeat until an answer that is not a 5xx or a dropped connection (counts retries)."""
    retries = 0
    while True:
        status, data, _ = client.request(method, path, body, headers)
        if status and status < 500:
            return status, data, retries
        retries += 1
        time.sleep(0.5)


def _ingest(client: stack.Http, subjects: list[str]) -> None:
    status, data, _ = _retrying(
        client, "POST", f"{API}/datasets/", {"name": f"faults-{subjects[0]}", "labels": LABELS}
    )
    assert status == 201, data
    rows = [
        {
            "external_id": f"{s}-r{k}",
            "subject_id": s,
            "text": f"ticket {k} from {s}: my parcel is late",
            "label": LABELS[k],
        }
        for s in subjects
        for k in range(3)
    ]
    status, data, _ = _retrying(client, "POST", f"{API}/datasets/{data['id']}/records/", rows)
    assert status in (200, 201), data


class Scenario:
    """File and approve one request per subject at a steady pace, from one thread."""

    def __init__(self, name: str, subjects: list[str], port: int, keys: dict[str, str]) -> None:
        self.name, self.subjects = name, subjects
        self.filer = stack.Http(port, keys["filer"])
        self.officer = stack.Http(port, keys["officer"])
        self.ids: dict[str, int] = {}
        self.approved = 0
        self.answers: dict[int, int] = {}
        self.retries = 0

    def run(self, pace_s: float) -> None:
        for n, subject in enumerate(self.subjects):
            status, data, retries = _retrying(
                self.filer,
                "POST",
                f"{API}/erasure-requests/",
                {"subject_id": subject, "reason": "Art. 17"},
                **{"Idempotency-Key": f"{self.name}-{n}"},
            )
            self.retries += retries
            if status not in (200, 201):
                print(f"  filing {subject}: {status} {data}")
                continue
            self.ids[subject] = data["id"]
            status, data, retries = _retrying(
                self.officer, "POST", f"{API}/erasure-requests/{data['id']}/approve/", {}
            )
            self.retries += retries
            self.answers[status] = self.answers.get(status, 0) + 1
            self.approved += 1
            time.sleep(pace_s)


def _control_pid(worker: stack.Service) -> int:
    import psutil

    assert worker.process is not None
    (child,) = psutil.Process(worker.process.pid).children()
    return int(child.pid)


def _executing(timeout: float) -> int | None:
    """The first request seen in ``executing`` (phase 1 committed, purge or certificate to
    come), polling every few milliseconds; None when none is seen in time."""
    from django.db import close_old_connections

    from governance.models import ErasureRequest

    close_old_connections()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ErasureRequest.objects.filter(status="executing").values_list("pk", flat=True)
        if found:
            return int(found[0])
        time.sleep(0.002)
    return None


def _in_flight(scenario: Scenario) -> int:
    """Requests approved but not yet completed when the fault strikes."""
    from django.db import close_old_connections

    from governance.models import ErasureRequest

    close_old_connections()
    return ErasureRequest.objects.filter(
        pk__in=list(scenario.ids.values()), status__in=("approved", "executing")
    ).count()


def _outcome(scenario: Scenario, fault_end: float, web_port: int) -> dict[str, Any]:
    from django.db import close_old_connections
    from django.db.models import Count

    from governance.models import ErasureRequest

    ids = set(scenario.ids.values())
    deadline = fault_end + SETTLE_S
    health_ok_at = None
    while time.time() < deadline:
        close_old_connections()
        done = ErasureRequest.objects.filter(pk__in=ids, status="completed").count()
        if health_ok_at is None:
            status, _, _ = stack.Http(web_port, "").request("GET", f"{API}/health/")
            health_ok_at = time.time() if status == 200 else None
        if done == len(ids) and health_ok_at is not None:
            break
        time.sleep(0.25)
    rows = ErasureRequest.objects.filter(subject_ref__in=scenario.subjects)
    completed = rows.filter(status="completed")
    # Recovery: the fault's end to the completion of the last request approved before it
    # ended (requests filed later complete at the normal pace and say nothing of it).
    before = completed.filter(approved_at__lte=datetime.fromtimestamp(fault_end, UTC))
    last = max((r.completed_at for r in before), default=None)
    after = completed.filter(completed_at__gt=datetime.fromtimestamp(fault_end, UTC))
    resumed = min((r.completed_at for r in after), default=None)
    return {
        "requests": len(scenario.subjects),
        "filed": len(ids),
        "approval_answers": {str(k): v for k, v in sorted(scenario.answers.items())},
        "client_retries": scenario.retries,
        "completed": completed.filter(pk__in=ids).count(),
        "duplicated": stack.duplicated(scenario.subjects, ids),
        "lost": len(ids) - completed.filter(pk__in=ids).count(),
        "statuses": dict(rows.values_list("status").annotate(n=Count("id"))),
        "approved_before_fault_end": before.count(),
        "recovery_s": round(max(0.0, last.timestamp() - fault_end), 1) if last else None,
        "resumed_s": round(resumed.timestamp() - fault_end, 1) if resumed else None,
        "health_ok_after_s": round(health_ok_at - fault_end, 1) if health_ok_at else None,
    }


def run_scenario(name: str, n: int, pace_s: float, fault: Any, ctx: dict[str, Any]) -> dict:
    subjects = [f"{name}-subject-{i:03d}" for i in range(n)]
    _ingest(stack.Http(ctx["port"], ctx["keys"]["filer"]), subjects)
    scenario = Scenario(name, subjects, ctx["port"], ctx["keys"])
    thread = threading.Thread(target=scenario.run, args=(pace_s,))
    thread.start()
    while scenario.approved < n // 3:
        time.sleep(0.05)
    in_flight = _in_flight(scenario)
    fault_start = time.time()
    detail = fault()
    fault_end = time.time()
    thread.join()
    result = _outcome(scenario, fault_end, ctx["port"])
    result |= {
        "fault": detail,
        "fault_s": round(fault_end - fault_start, 1),
        "in_flight_at_fault": in_flight,
    }
    print(f"{name}: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lethe-faults-"))
    folder.chmod(0o755)  # the postgres user walks into it
    pg, redis = stack.Postgres(folder / "pg"), stack.Redis(folder / "redis")
    services: list[stack.Service] = []
    try:
        pg.init()
        pg.create_database("lethe_bench_faults")
        redis.start()
        db_url = pg.url("lethe_bench_faults")
        env = stack.stack_env(folder, db_url, redis.url, LETHE_ERASURE_STUCK_SECONDS="120")
        os.environ["CELERY_BROKER_URL"] = redis.url
        harness.django_setup(db_url, **{k: env[k] for k in ("LETHE_AUDIT_KEY", "ARTIFACT_ROOT")})
        keys = stack.tokens(db_url, filer="integration", officer="privacy_officer")
        keys = {"filer": keys["filer"], "officer": keys["officer"]}
        web, worker = stack.gunicorn(env, folder), stack.worker(env, folder)
        services = [web, worker]
        for service in services:
            service.start()
        stack.wait_port(web.port)
        ctx = {"port": web.port, "keys": keys}
        _wait_healthy(web.port)

        def kill_worker() -> str:
            pid = _control_pid(worker)
            caught = _executing(timeout=10.0)  # land inside an erasure, between its phases
            os.kill(pid, 9)
            return f"SIGKILL control worker pid {pid}" + (
                f" while request {caught} was executing" if caught else " (none executing)"
            )

        def broker_down() -> str:
            redis.stop()
            time.sleep(args.outage)
            redis.start()
            return f"redis-server down {args.outage:.0f} s"

        def database_restart() -> str:
            pg.stop("fast")
            time.sleep(5)
            pg.start()
            return "PostgreSQL stopped (fast), 5 s down, started"

        plan = [
            ("worker_sigkill", 0.1, kill_worker),
            ("broker_down", 0.5, broker_down),
            ("database_restart", 0.2, database_restart),
        ]
        results = {}
        for name, pace, fault in plan:
            if args.only and name != args.only:
                continue
            results[name] = run_scenario(name, args.requests, pace, fault, ctx)
            _wait_healthy(web.port)
        harness.write_results(
            "faults",
            {
                "stack": "gunicorn 4x4 + manage.py worker + redis-server + PostgreSQL (private)",
                "requests_per_scenario": args.requests,
                "outage_s": args.outage,
                "scenarios": results,
                "machine": harness.machine_info(postgres=True),
            },
        )
        rows = [
            [n, r["filed"], r["completed"], r["duplicated"], r["lost"], r["recovery_s"]]
            for n, r in results.items()
        ]
        harness.print_table(
            "faults", ["scenario", "filed", "completed", "dup", "lost", "recovery s"], rows
        )
    finally:
        for service in reversed(services):
            service.stop()
        redis.stop()
        try:
            pg.stop("immediate")
        except Exception as exc:  # already down
            print(f"pg stop: {exc}")
        stack.cleanup(folder)


def _wait_healthy(port: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        status, body, _ = stack.Http(port, "").request("GET", f"{API}/health/")
        if status == 200:
            return
        time.sleep(0.5)
    sys.exit(f"stack not healthy after {timeout} s: {body}")


if __name__ == "__main__":
    main()
