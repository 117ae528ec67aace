"""Reads: which serving manifest is in force, and what the next one would hold.

The manifest in force for a model is its highest version. Manifests are append-only (a new
version for every change), so "latest" needs no state flag that could disagree with it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef

from governance import engine
from governance.errors import ApplicationError
from governance.models import (
    Sequence,
    ServingManifest,
    Shard,
    Stage,
    TrainingTask,
    UnlearningModel,
)


def manifest_latest(model: UnlearningModel) -> ServingManifest | None:
    """The manifest in force for ``model``, or ``None`` before its first publication."""
    return ServingManifest.objects.filter(model=model).order_by("-version").first()


def manifest_current(model: UnlearningModel) -> ServingManifest:
    """The manifest in force; a 409 ``model_not_ready`` while the model has none."""
    manifest = manifest_latest(model)
    if manifest is None:
        raise ApplicationError(
            code="model_not_ready",
            status=409,
            message="model: no serving manifest yet; train the model first",
        )
    return manifest


@dataclass(frozen=True)
class Grid:
    """One generation of a model as the serving rule reads it, loaded in two statements.

    ``shards`` in index order (those with sequences: a shard without any cannot serve),
    ``sequences`` per shard id in index order, ``stages`` by (shard id, prefix), ``done``:
    the sequences whose training task finished.
    """

    shards: list[Shard]
    sequences: dict[int, list[Sequence]]
    stages: dict[tuple[int, str], Stage]
    done: set[int]


def generation_grid(model: UnlearningModel, generation: int) -> Grid:
    """Shards, sequences (with whether their task finished) and stages of one generation:
    two statements, whatever the number of shards, sequences or stages."""
    finished = TrainingTask.objects.filter(sequence=OuterRef("pk"), status=TrainingTask.Status.DONE)
    rows = (
        Sequence.objects.filter(shard__model=model, shard__generation=generation)
        .select_related("shard")
        .annotate(finished=Exists(finished))
        .order_by("shard__index", "index")
    )
    shards: dict[int, Shard] = {}
    sequences: dict[int, list[Sequence]] = {}
    done: set[int] = set()
    for seq in rows:
        shards.setdefault(seq.shard_id, seq.shard)
        sequences.setdefault(seq.shard_id, []).append(seq)
        if seq.finished:
            done.add(seq.pk)
    stages = {
        (s.shard_id, s.prefix): s
        # Without their training metrics: the serving rule never reads them.
        for s in Stage.objects.filter(shard__model=model, shard__generation=generation).defer(
            "metrics"
        )
    }
    return Grid(list(shards.values()), sequences, stages, done)


def manifest_entries(
    model: UnlearningModel,
    *,
    generation: int | None = None,
    assume_deactivated: Collection[int] = (),
    grid: Grid | None = None,
) -> list[dict[str, Any]]:
    """The serving choice of every shard of one generation (default: the model's newest).

    ``assume_deactivated`` names stage ids to treat as deactivated: the impact preview
    asks what the manifest *would* be after an erasure with the very rule that publishes it.
    ``grid``: that generation already loaded (``generation_grid``), so asking twice reads
    the database once.
    """
    from unlearning.policy import best_serving

    generation = model.generation if generation is None else generation
    grid = grid if grid is not None else generation_grid(model, generation)
    stages = grid.stages
    gone = set(assume_deactivated)
    entries = []
    for shard in grid.shards:
        sequences = grid.sequences[shard.pk]
        depths = [
            _depth(seq.order, shard, stages, gone) if seq.pk in grid.done else 0
            for seq in sequences
        ]
        serving = best_serving(depths)
        if serving is None:
            continue
        order = sequences[serving.sequence_index].order
        chosen = [
            stages[(shard.pk, engine.prefix_text(order[:d]))] for d in range(1, serving.depth + 1)
        ]
        entries.append(
            {
                "shard": shard.index,
                "sequence": serving.sequence_index,
                "depth": serving.depth,
                "stages": [
                    {"id": s.pk, "prefix": s.prefix, "digest": s.tensor_digest} for s in chosen
                ],
            }
        )
    return entries


def _depth(
    order: list[int], shard: Shard, stages: dict[tuple[int, str], Stage], gone: set[int]
) -> int:
    depth = 0
    for d in range(1, len(order) + 1):
        stage = stages.get((shard.pk, engine.prefix_text(order[:d])))
        if stage is None or stage.state != Stage.State.TRAINED or stage.pk in gone:
            break
        depth = d
    return depth
