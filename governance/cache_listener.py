"""The eviction broadcast, heard by a process that is not a Celery worker (gunicorn's
workers, ``manage.py serve``): a daemon thread on Celery's broadcast mailbox.

A worker answers ``lethe_cache_evict`` through Celery's own remote control
(celery_worker/control.py). A web process loads stages for predictions into its own cache
folder too, so it listens on the same fanout exchange with a kombu pidbox ``Node`` of its
own (one queue per process, deleted with it) and handles that one command only: ``ping``,
``inspect`` and the rest are for workers, and answering them would count a web process as
one. Broker errors are logged and the thread reconnects with a growing pause; what it
misses meanwhile the cache sweep, run at each (re)connection, drops.

Started once per process by ``cache_listener_start`` (gunicorn's ``post_worker_init``
hook, the serve command); never under the test runner unless a test calls it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_started: dict[int, CacheListener] = {}  # by pid: a forked child starts its own

RECONNECT_MAX_S = 30.0
POLL_S = 1.0


class CacheListener:
    """One process's listener thread; ``stop()`` ends it within about ``POLL_S``."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.connected = threading.Event()  # set while consuming (tests wait on it)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lethe-cache-listener", daemon=True)

    def start(self) -> CacheListener:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                self._listen()
                pause = 1.0
            except Exception as exc:  # kombu raises the transport's own errors
                self.connected.clear()
                log.warning(
                    "cache listener: broker error (%s: %s); reconnecting in %.0f s",
                    type(exc).__name__,
                    exc,
                    pause,
                )
                self._stop.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX_S)

    def _listen(self) -> None:
        from celery_worker.celery import app
        from celery_worker.control import EVICT_COMMAND
        from governance.artifacts import stage_keys_evict

        def evict(state: Any, keys: list[str]) -> dict[str, Any]:
            return {"ok": stage_keys_evict(keys)}

        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            node = app.control.mailbox.Node(self.hostname, handlers={EVICT_COMMAND: evict})

            def on_message(body: dict[str, Any], message: Any) -> None:
                if isinstance(body, dict) and body.get("method") == EVICT_COMMAND:
                    node.handle_message(body, message)

            with node.listen(channel=conn.default_channel, callback=on_message):
                # Redis fanout is PUB/SUB, subscribed in the first drain: only after it is
                # this process hearing broadcasts. Then sweep, so none falls in between.
                self._drain(conn, 0.1)
                self.connected.set()
                _sweep()  # anything destroyed while this process was not listening
                while not self._stop.is_set():
                    self._drain(conn, POLL_S)
        self.connected.clear()

    @staticmethod
    def _drain(conn: Any, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=timeout)


def _sweep() -> None:
    """Run the cache sweep from the listener thread, on a database connection it closes."""
    from django.db import connection

    from governance.artifacts import stage_cache_sweep

    try:
        stage_cache_sweep()
    except Exception as exc:  # the database may be away; the next (re)connection retries
        log.warning("cache listener: sweep failed (%s: %s)", type(exc).__name__, exc)
    finally:
        connection.close()


def cache_listener_start(hostname: str | None = None) -> CacheListener | None:
    """Start this process's listener (once per process; later calls return it). None, and
    no thread, when this process keeps no stage cache (a local-folder store): nothing to
    evict then."""
    from governance.artifacts import stage_cache

    if stage_cache() is None:
        return None
    pid = os.getpid()
    with _lock:
        listener = _started.get(pid)
        if listener is None:
            name = hostname or f"lethe-web.{pid}@{socket.gethostname()}"
            listener = _started[pid] = CacheListener(name).start()
        return listener


def cache_listener_stop() -> None:
    """Stop this process's listener, if it started one (tests)."""
    with _lock:
        listener = _started.pop(os.getpid(), None)
    if listener is not None:
        listener.stop()
