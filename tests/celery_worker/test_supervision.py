"""Worker supervision with real processes: a dead child comes back, a budget ends it, and
a child (and the beat inside it) never outlives a parent killed by SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from celery_worker.supervision import Supervisor

REPO = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


def _until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_child_is_restarted_and_stopped_with_the_supervisor():
    supervisor = Supervisor(SLEEPER, backoff_s=0.1)
    supervisor.start()
    try:
        first = _until(lambda: supervisor.pids and supervisor.pids[0], what="the first child")
        os.kill(first, signal.SIGKILL)
        second = _until(lambda: len(supervisor.pids) == 2 and supervisor.pids[1], what="restart")
        assert second != first
        assert _alive(second)
        assert not supervisor.failed
    finally:
        supervisor.stop()
    assert not _alive(second)


def test_a_child_that_keeps_dying_exhausts_the_budget():
    gave_up = []
    supervisor = Supervisor(
        [sys.executable, "-c", "raise SystemExit(3)"],
        max_restarts=2,
        window_s=60,
        backoff_s=0.05,
        on_give_up=lambda: gave_up.append(time.monotonic()),
    )
    supervisor.start()
    try:
        _until(lambda: gave_up, what="giving up")
    finally:
        supervisor.stop()
    assert supervisor.failed
    assert len(supervisor.pids) == 3  # the first start and two restarts
    assert len(gave_up) == 1


PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", '''
    import os, time, sys
    sys.path.insert(0, {repo!r})
    from celery_worker.lifelines import die_with_parent
    die_with_parent({parent_arg})
    print("armed", flush=True)
    time.sleep(300)
    '''], stdout=sys.stdout)
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


@pytest.mark.parametrize("parent_arg", ["", "int(os.getppid())"], ids=["current", "given"])
def test_a_child_dies_with_its_sigkilled_parent(parent_arg):
    code = PARENT.format(repo=str(REPO), parent_arg=parent_arg)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "armed"
        parent.kill()
        parent.wait(timeout=10)
        _until(lambda: not _alive(child), timeout=10, what="the orphan to exit")
    finally:
        parent.kill()
        parent.stdout.close()


def _describe(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        return f"{pid} {process.status()} ppid={process.ppid()} {process.cmdline()}"
    except psutil.NoSuchProcess:
        return f"{pid} gone"


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def _worker_environment(settings: Any, **env: str) -> dict[str, str]:
    """A worker process's environment: this test's database and broker folder."""
    from tests.integration.test_worker import _database_url

    return {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "LETHE_BROKER_DIR": str(settings.LETHE_BROKER_DIR),
        "LETHE_WORKER_HEARTBEAT_S": "1",
        **env,
    }


def _control_heartbeat() -> None:
    from governance.models import WorkerHeartbeat

    _until(
        lambda: WorkerHeartbeat.objects.filter(hostname__startswith="control-").exists(),
        timeout=120,
        what="the control worker's heartbeat",
    )


@contextlib.contextmanager
def _manage_py_worker(
    tmp_path: Path, settings: Any, *args: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The real ``manage.py worker`` (logging to tmp_path/worker.log), yielded once its
    control worker heartbeats; its whole process group is killed afterwards."""
    with (tmp_path / "worker.log").open("w") as log:
        parent = subprocess.Popen(
            [sys.executable, "manage.py", "worker", *args, "--loglevel=info"],
            cwd=REPO,
            env=_worker_environment(settings, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _control_heartbeat()
            yield parent
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(parent.pid, signal.SIGKILL)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_manage_py_worker_restarts_its_control_worker_and_takes_it_down(tmp_path, settings):
    """The real command: SIGKILL the control worker and it comes back (with its embedded
    beat); SIGKILL the parent and neither the control worker nor the beat survives it."""
    with _manage_py_worker(tmp_path, settings, "--beat", LETHE_TORCH_THREADS="1") as parent:
        (control,) = _children(parent.pid)
        (beat,) = _until(lambda: _children(control.pid), timeout=60, what="its embedded beat")
        control.kill()
        _until(
            lambda: not _alive(beat.pid),
            timeout=30,
            what=f"the beat to follow its worker: {_describe(beat.pid)}",
        )
        restarted = _until(
            lambda: [p for p in _children(parent.pid) if p.pid != control.pid],
            timeout=60,
            what="the restarted control worker",
        )[0]
        (new_beat,) = _until(lambda: _children(restarted.pid), timeout=120, what="a new beat")
        parent.kill()
        parent.wait(timeout=10)
        _until(
            lambda: not _alive(restarted.pid) and not _alive(new_beat.pid),
            timeout=60,
            what="the orphaned control worker and beat to exit",
        )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_manage_py_worker_exits_non_zero_when_it_cannot_keep_its_control_worker(tmp_path, settings):
    """With no restarts allowed, one death of the control worker ends the command: a cold
    shutdown of the training worker and exit status 3, for its own supervisor to act on."""
    with _manage_py_worker(tmp_path, settings, LETHE_WORKER_MAX_RESTARTS="0") as parent:
        (control,) = _children(parent.pid)
        control.kill()
        assert parent.wait(timeout=60) == 3, (tmp_path / "worker.log").read_text()[-3000:]
    assert "giving up" in (tmp_path / "worker.log").read_text()


def test_a_worker_asked_for_warnings_only_prints_no_banner():
    from governance.management.commands.worker import _argv

    assert _argv("control,default", "warning", beat=True)[:2] == ["--quiet", "worker"]
    assert "--quiet" not in _argv("training", "info", beat=False)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_background_worker_dies_with_the_serve_process_that_started_it(tmp_path, settings):
    """``manage.py serve`` starts ``worker --parent-pid=<its pid>``: a SIGKILL to serve
    skips its cleanup, so the worker (training process and control child) must stop by
    itself rather than keep consuming as an orphan."""
    # A stand-in for serve: starts the worker exactly as serve does, then waits.
    launcher_code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--loglevel=info",
             f"--parent-pid={{os.getpid()}}"],
            cwd={str(REPO)!r},
        )
        time.sleep(600)
        """
    )
    with (tmp_path / "worker.log").open("w") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-c", launcher_code],
            env=_worker_environment(settings, LETHE_TORCH_THREADS="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _control_heartbeat()
            (worker,) = _children(launcher.pid)
            (control,) = _until(lambda: _children(worker.pid), timeout=60, what="its child")
            launcher.kill()
            launcher.wait(timeout=10)
            _until(
                lambda: not _alive(worker.pid) and not _alive(control.pid),
                timeout=60,
                what=f"the orphaned worker to exit: {_describe(worker.pid)}",
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launcher.pid, signal.SIGKILL)
