"""Steps 5 and 8, predictions: held-out messages through ``model_predict``, before and
after the erasure, and the held-out accuracy they add up to."""

from __future__ import annotations

from collections.abc import Sequence

from governance.demo.console import Console, short
from governance.errors import ApplicationError
from governance.models import UnlearningModel
from governance.services.serving import Prediction, model_predict
from unlearning.sample_data import SampleRecord

SAMPLE_SHOWN = 6  # held-out messages whose predictions are printed, one per intent
PREDICT_BATCH = 64


def shown_records(test: Sequence[SampleRecord]) -> list[SampleRecord]:
    """One held-out message per intent, the first in file order."""
    picked: dict[str, SampleRecord] = {}
    for record in test:
        picked.setdefault(record.label, record)
    return list(picked.values())[:SAMPLE_SHOWN]


def predict(console: Console, model: UnlearningModel, texts: list[str]) -> list[Prediction] | None:
    """The model's predictions, or None (and why, printed) when it refuses to serve."""
    try:
        return list(model_predict(model=model, inputs=texts).predictions)
    except ApplicationError as exc:
        console.write(f"  prediction refused: {exc.message}")
        return None


def accuracy(
    console: Console, model: UnlearningModel, test: Sequence[SampleRecord]
) -> float | None:
    hits = 0
    for start in range(0, len(test), PREDICT_BATCH):
        batch = test[start : start + PREDICT_BATCH]
        predictions = predict(console, model, [r.text for r in batch])
        if predictions is None:
            return None
        hits += sum(p.label == r.label for p, r in zip(predictions, batch, strict=True))
    return hits / len(test) if test else None


def predictions_print(
    console: Console,
    shown: Sequence[SampleRecord],
    before: list[Prediction] | None,
    after: list[Prediction] | None,
) -> None:
    """The shown messages with their intent and the predictions; "after" once there is one."""
    headers = ["held-out message", "intent", "before"]
    if after is not None or before is None:
        headers.append("after")
    rows = []
    for i, record in enumerate(shown):
        row = [short(record.text, 52), record.label, _cell(before, i)]
        if len(headers) == 4:
            row.append(_cell(after, i))
        rows.append(row)
    console.table(headers, rows)


def _cell(predictions: list[Prediction] | None, i: int) -> str:
    if predictions is None:
        return "—"
    p = predictions[i]
    return f"{p.label} {p.scores[p.label]:.2f}"
