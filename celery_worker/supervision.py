"""Keep a child worker process up: restart it when it dies, with backoff, within a budget.

``manage.py worker`` runs the training worker in its own process and the control worker
(erasures, sweeps) as a child. Without supervision a control worker that crashed (out of
memory, a native fault) stayed dead while the parent looked healthy, and erasures waited.
``Supervisor`` restarts it after 1 s, 2 s, 4 s ... up to 30 s; a child that ran longer
than the window resets the backoff. More than ``max_restarts`` deaths within the window
means something is wrong that a restart does not fix (a bad setting, a broken database
URL): the supervisor gives up and calls ``on_give_up``, and the command exits non-zero so
that systemd, Kubernetes or whatever runs it can act.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)
STOP_WAIT_S = 30.0


class Supervisor:
    """Run ``argv`` in a child process from a thread, restarting it when it exits.

    The child is started from the supervisor's own thread, which lives as long as the
    supervisor: Linux's parent-death signal (``lifelines.die_with_parent``) fires when the
    *thread* that forked the child ends, not only the process.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        max_restarts: int = 5,
        window_s: float = 300.0,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        on_give_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.on_give_up = on_give_up
        self.failed = False
        self.pids: list[int] = []  # every child started, oldest first
        self._child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            child = subprocess.Popen(self.argv, cwd=self.cwd)  # noqa: S603 (our own argv)
            self._child = child
            self.pids.append(child.pid)
            log.info("started %s (pid %s)", self.argv[-1], child.pid)
            return child

    def _run(self) -> None:
        deaths: deque[float] = deque()
        delay = self.backoff_s
        while not self._stop.is_set():
            child = self._spawn()
            if child is None:
                return
            started = time.monotonic()
            while child.poll() is None and not self._stop.wait(0.2):
                pass
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now - started > self.window_s:
                delay = self.backoff_s  # it ran well for a while: start the backoff afresh
            deaths.append(now)
            while deaths and now - deaths[0] > self.window_s:
                deaths.popleft()
            if len(deaths) > self.max_restarts:
                log.error(
                    "child pid %s exited with %s; %s deaths in %.0f s: giving up",
                    child.pid,
                    child.returncode,
                    len(deaths),
                    self.window_s,
                )
                self.failed = True
                self.on_give_up()
                return
            log.warning(
                "child pid %s exited with %s; restarting in %.0f s",
                child.pid,
                child.returncode,
                delay,
            )
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.backoff_max_s)

    def stop(self) -> None:
        """Stop restarting, then stop the child (SIGTERM: a warm shutdown; SIGKILL after 30 s)."""
        with self._lock:
            self._stop.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._thread.join(timeout=5)
