"""Step 3, the sample data: the dataset ``demo-support`` and the sample support tickets,
validated and ingested as the integration account, exactly as the ingest API does."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User

from governance.demo.accounts import DemoAccount
from governance.demo.console import Console
from governance.models import Dataset, Record
from governance.selectors.demo import (
    dataset_named,
    dataset_record_counts,
    dataset_subject_count,
    user_get,
)
from governance.services.datasets import dataset_create, records_upsert
from governance.services.demo import DemoError
from governance.services.record_rows import validate_rows
from unlearning.demo_config import DemoConfig
from unlearning.sample_data import LABELS, SampleDataset, generate

DATASET_NAME = "demo-support"


def dataset_ensure(
    console: Console, *, config: DemoConfig, accounts: dict[str, DemoAccount]
) -> tuple[Dataset, SampleDataset, bool]:
    """The dataset with the sample in it, and whether an earlier run had ingested it."""
    integration = user_get(accounts["integration"].username)
    dataset = dataset_named(DATASET_NAME)
    if dataset is None:
        dataset = dataset_create(actor=integration, name=DATASET_NAME, labels=list(LABELS))
    # The sample is a function of its size and seed: rebuild the one ingested before.
    subjects = dataset_subject_count(dataset)
    reused = subjects > 0
    sample = generate(num_subjects=subjects or config.subjects, seed=config.seed)
    state = _reused_state(dataset) if reused else _ingest(dataset, sample, actor=integration)
    by_label = {label: sum(r.label == label for r in sample.train) for label in sample.labels}
    console.fields(
        [
            ("dataset", f"{dataset.name} (id {dataset.pk}), {state}"),
            (
                "sample",
                f"{len(sample.train)} support messages from {len(sample.subjects())} data "
                f"subjects; {len(sample.test)} held-out messages by other subjects",
            ),
            ("intents", ", ".join(f"{k} {v}" for k, v in by_label.items())),
        ]
    )
    return dataset, sample, reused


def _reused_state(dataset: Dataset) -> str:
    counts = dataset_record_counts(dataset)
    return (
        f"reused: {counts.get(Record.Status.ACTIVE, 0)} active records, "
        f"{counts.get(Record.Status.ERASED, 0)} erased (tombstones)"
    )


def _ingest(dataset: Dataset, sample: SampleDataset, *, actor: User) -> str:
    rows = [
        {"external_id": r.external_id, "subject_id": r.subject_id, "text": r.text, "label": r.label}
        for r in sample.train
    ]
    valid, errors = validate_rows(
        rows, labels=dataset.labels, max_rows=settings.LETHE_MAX_BATCH_ROWS
    )
    if errors:
        raise DemoError(f"the sample data has invalid rows: {errors[:3]}")
    upsert = records_upsert(actor=actor, dataset=dataset, rows=valid)
    return f"ingested by {actor.username}: {upsert.created} records created"
