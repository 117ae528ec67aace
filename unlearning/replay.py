"""Replay: retrain a prefix from the base model on its lineage and compare tensors (I4).

A replay builds nothing from stored stages: it starts from the frozen base, trains stage 1
on the first slice's records, stage 2 on the first two, and so on, with the seeds and
settings of the recipe. Equality is judged on tensor digests, never on file hashes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unlearning.artifacts import StageArtifact, StageKey
from unlearning.assembly import AdapterHost
from unlearning.data import Collator, Example
from unlearning.training import TrainSettings, train_stage


def replay_prefix(
    host: AdapterHost,
    *,
    shard: int,
    prefix: tuple[int, ...],
    slices: Mapping[int, Sequence[Example]],
    collate: Collator,
    settings: TrainSettings,
    model_seed: int,
) -> list[StageArtifact]:
    """Train stages 1..len(prefix) of ``prefix`` from the base, on lineage records only.

    Args:
        host: a host over a fresh base model (its loaded stages are ignored).
        shard: shard index.
        prefix: the slice order to replay.
        slices: records per slice; only the prefix's slices are read.
        collate: batch builder.
        settings: the recorded settings.
        model_seed: the recorded model seed.

    Returns:
        The replayed stage artifacts, stage 1 first.
    """
    stages: list[StageArtifact] = []
    for depth in range(1, len(prefix) + 1):
        key = StageKey(shard, prefix[:depth])
        examples = [e for s in key.prefix for e in slices[s]]
        stages.append(
            train_stage(
                host,
                key=key,
                parents=stages,
                examples=examples,
                collate=collate,
                settings=settings,
                model_seed=model_seed,
            )
        )
    return stages
