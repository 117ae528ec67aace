"""Reads: a model's status, training progress and per-shard serving state."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from governance.models import Record, SliceAssignment, TrainingJob, UnlearningModel
from governance.selectors.manifests import manifest_latest


def model_detail(*, model: UnlearningModel) -> dict[str, Any]:
    """Status, training progress and, per shard, the serving choice and deletions left."""
    from unlearning.policy import expected_deletions_left

    job = TrainingJob.objects.filter(model=model).order_by("-pk").first()
    manifest = manifest_latest(model)
    serving = {e["shard"]: e for e in manifest.entries} if manifest else {}
    dirty: dict[int, set[int]] = defaultdict(set)
    for shard_index, slice_index in (
        SliceAssignment.objects.filter(
            model=model, generation=model.generation, record__status=Record.Status.ERASED
        )
        .values_list("slice__shard__index", "slice__index")
        .distinct()
    ):
        dirty[shard_index].add(slice_index)
    shards = []
    for shard in model.shards.filter(generation=model.generation).order_by("index"):
        sequences = [tuple(s.order) for s in shard.sequences.order_by("index")]
        entry = serving.get(shard.index)
        shards.append(
            {
                "index": shard.index,
                "serving_sequence": entry["sequence"] if entry else None,
                "depth": entry["depth"] if entry else 0,
                "deleted_slices": sorted(dirty[shard.index]),
                "deletions_left": round(
                    expected_deletions_left(
                        sequences, dirty[shard.index], model.num_slices, model.retrain_threshold
                    ),
                    2,
                ),
            }
        )
    return {
        "model": model,
        "job": job,
        "manifest_version": manifest.version if manifest else None,
        "shards": shards,
    }
