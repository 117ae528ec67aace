"""The live training bar (rich): stages done, elapsed time and loss, read from the job row."""

from __future__ import annotations

import threading
import time

from django.db import connection
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from governance.demo.console import Console, clock, loss
from governance.models import TrainingJob
from governance.selectors.demo import training_job_find


class ProgressBar:
    """Redraws one line twice a second from the job row: stages, elapsed time, loss.

    Runs in a thread with its own database connection (closed when it stops); the main
    thread trains. Only used on a terminal; elsewhere one line per task is printed.
    """

    def __init__(self, console: Console, job: TrainingJob, started: float) -> None:
        self.job_id, self.started = job.pk, started
        self._progress = Progress(
            TextColumn("  "),
            BarColumn(bar_width=28),
            TextColumn("{task.completed:>3.0f}/{task.total:.0f} stages"),
            TextColumn("{task.fields[elapsed]}  loss {task.fields[loss]}"),
            console=console.rich,
            auto_refresh=False,  # this thread redraws when it has read the row
        )
        self._task: TaskID = self._progress.add_task(
            "training",
            total=job.stages_total,
            completed=job.stages_done,
            elapsed=clock(time.monotonic() - started),
            loss=loss(job.current_loss),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)

    def start(self) -> None:
        self._progress.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._draw()  # the final state, from this thread
        self._progress.stop()

    def _draw(self) -> None:
        job = training_job_find(self.job_id)
        if job is not None:
            self._progress.update(
                self._task,
                completed=job.stages_done,
                total=job.stages_total,
                elapsed=clock(time.monotonic() - self.started),
                loss=loss(job.current_loss),
            )
            self._progress.refresh()

    def _loop(self) -> None:
        try:
            while True:
                self._draw()
                if self._stop.wait(0.5):
                    return
        finally:
            connection.close()
