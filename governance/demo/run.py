"""The walkthrough in order, under the demo lock: each step is a module of this package."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from governance.demo.accounts import DemoAccount, accounts_ensure
from governance.demo.certificate import certificate_print
from governance.demo.console import Console, clock, pct, quiet_libraries
from governance.demo.data import dataset_ensure
from governance.demo.database import database_prepare
from governance.demo.erasure import erasure_run
from governance.demo.predictions import accuracy, predict, predictions_print, shown_records
from governance.demo.serve import logins_print
from governance.demo.state import demo_lock, var_dir
from governance.demo.training import model_ensure
from governance.models import UnlearningModel
from unlearning.demo_config import DemoConfig
from unlearning.sample_data import SampleRecord

TITLE = "Lethe demo: exact machine unlearning (S3T) with lineage, erasure and proof"


@dataclass
class DemoResult:
    """What a run did, for the caller (the command and the tests)."""

    reused: bool
    trained: bool
    model_id: int
    subject_ref: str | None = None
    request_id: int | None = None
    certificate_id: str | None = None
    signature_ok: bool = False
    accounts: dict[str, DemoAccount] = field(default_factory=dict)
    accuracy_before: float | None = None
    accuracy_after: float | None = None


class Demo:
    """One run of the walkthrough; ``run`` does everything up to serving."""

    def __init__(
        self,
        *,
        config: DemoConfig,
        out: TextIO | Any,
        state_dir: Path,
        base_url: str = "http://127.0.0.1:8000/",
    ) -> None:
        self.config = config
        self.console = Console(out)
        self.state_dir = state_dir
        self.base_url = base_url

    def run(self, *, reset: bool = False) -> DemoResult:
        quiet_libraries()
        c, config, started = self.console, self.config, time.monotonic()
        c.write(TITLE)
        c.section("Database")
        database_prepare(c, reset=reset, state_dir=self.state_dir)
        c.section("Accounts")
        accounts = accounts_ensure(c, state_dir=self.state_dir)
        c.section("Sample data")
        dataset, sample, data_reused = dataset_ensure(c, config=config, accounts=accounts)
        c.section("S3T model")
        model, trained = model_ensure(c, config=config, dataset=dataset, accounts=accounts)
        result = DemoResult(
            reused=data_reused and not trained,
            trained=trained,
            model_id=model.pk,
            accounts=accounts,
        )
        self._erase_and_compare(result, model, list(sample.test), labels=len(sample.labels))
        c.section("Sign in")
        logins_print(c, accounts=accounts, model_id=model.pk, base_url=self.base_url)
        c.write()
        c.write(f"Demo steps done in {clock(time.monotonic() - started)}.")
        return result

    def _erase_and_compare(
        self,
        result: DemoResult,
        model: UnlearningModel,
        test: Sequence[SampleRecord],
        *,
        labels: int,
    ) -> None:
        """Predict, erase, certify, predict again: the same messages before and after."""
        c = self.console
        shown = shown_records(test)
        c.section("Predictions before the erasure")
        before = predict(c, model, [r.text for r in shown])
        result.accuracy_before = accuracy(c, model, test)
        predictions_print(c, shown, before, None)
        c.write(f"  Held-out accuracy: {pct(result.accuracy_before)} on {len(test)} messages")
        c.section("Erasure request")
        request = erasure_run(c, model=model, accounts=result.accounts)
        if request is not None:
            result.subject_ref, result.request_id = request.subject_ref, request.pk
            c.section("Deletion certificate")
            result.certificate_id, result.signature_ok = certificate_print(
                c, request=request, base_url=self.base_url
            )
        c.section("Predictions after the erasure")
        model.refresh_from_db()
        after = predict(c, model, [r.text for r in shown])
        result.accuracy_after = accuracy(c, model, test)
        predictions_print(c, shown, before, after)
        c.write(
            f"  Held-out accuracy: {pct(result.accuracy_before)} before, "
            f"{pct(result.accuracy_after)} after (chance {1 / labels:.0%})"
        )


def run_demo(
    *,
    config: DemoConfig,
    out: TextIO | Any,
    state_dir: Path | None = None,
    reset: bool = False,
    base_url: str = "http://127.0.0.1:8000/",
    before_unlock: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the walkthrough under the demo lock; ``before_unlock`` (serving) runs inside it."""
    state = state_dir or var_dir()
    with demo_lock(state):
        result = Demo(config=config, out=out, state_dir=state, base_url=base_url).run(reset=reset)
        if before_unlock is not None:
            before_unlock(result)
    return result
