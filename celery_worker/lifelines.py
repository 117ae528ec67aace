"""Tie a process's life to its parent's: a child worker or embedded beat never outlives it.

On Linux ``prctl(PR_SET_PDEATHSIG)`` has the kernel signal the child the moment its parent
dies (even by SIGKILL). Elsewhere, or if the parent died before the call, a daemon thread
polls the parent pid every second. Either way the child gets SIGTERM, Celery's warm
shutdown: it finishes (or, with late acknowledgement, hands back) the task in hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
POLL_S = 1.0


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Arrange for ``sig`` when the parent (``parent_pid``, by default the current one) dies."""
    expected = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            # The running program's own symbols include libc's: no find_library (it forks).
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    # The parent may have died before prctl ran; then no signal would ever come.
    if os.getppid() != expected:
        log.warning("parent %s is gone; stopping", expected)
        os.kill(os.getpid(), sig)
        return
    threading.Thread(target=_watch, args=(expected, sig), name="parent-watch", daemon=True).start()


def _watch(parent_pid: int, sig: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_S):
        if os.getppid() != parent_pid:
            log.warning("parent %s is gone; stopping", parent_pid)
            os.kill(os.getpid(), sig)
            return
