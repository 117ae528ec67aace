"""The live training bar: stages done, elapsed time and loss, redrawn from the job row."""

from __future__ import annotations

import threading
import time

from django.db import connection

from governance.demo.console import Console, bar, clock, loss
from governance.models import TrainingJob
from governance.selectors.demo import training_job_find


class ProgressBar:
    """Redraws one line twice a second from the job row: stages, elapsed time, loss.

    Runs in a thread with its own database connection (closed when it stops); the main
    thread trains. Only used on a terminal; elsewhere one line per task is printed.
    """

    def __init__(self, console: Console, job: TrainingJob, started: float) -> None:
        self.console, self.job_id, self.started = console, job.pk, started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._draw()  # the final state, from this thread
        self.console.write()

    def _draw(self) -> None:
        job = training_job_find(self.job_id)
        if job is not None:
            self.console.write(
                f"\r  {bar(job.stages_done, job.stages_total)}  "
                f"{clock(time.monotonic() - self.started)}  loss {loss(job.current_loss)}   ",
                ending="",
            )

    def _loop(self) -> None:
        try:
            while True:
                self._draw()
                if self._stop.wait(0.5):
                    return
        finally:
            connection.close()
