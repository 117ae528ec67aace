"""Reads: the erasure impact preview, what erasing a subject now would do.

The preview is computed with the very rule that publishes manifests
(``selectors.manifests.manifest_entries`` with the stages assumed deactivated), so the depths
it promises are the depths the erasure will leave. It is shown at intake and refreshed at
approval unless its stamp (``impact_stamp``) shows nothing changed since; it writes
nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from django.db import connection
from django.utils import timezone

from governance import engine
from governance.models import (
    AuditEvent,
    Record,
    Shard,
    SliceAssignment,
    Stage,
    TrainingJob,
    TrainingTask,
    UnlearningModel,
)
from governance.selectors.manifests import (
    Grid,
    generation_grid,
    manifest_entries,
    manifest_latest,
)

# Stages an erasure deactivates when their lineage holds an erased record: every stage
# that may still serve or become serving, in any generation, including one in training.
LIVE_STATES = (Stage.State.PENDING, Stage.State.TRAINING, Stage.State.TRAINED)

# (generation, shard index, slice index) of the slices holding the subject's records.
Cell = tuple[int, int, int]


def erasure_impact(*, subject_ref: str) -> dict[str, Any]:
    """What erasing the subject now would do, computed with the rule that publishes manifests.

    Per model: the shards and slices holding the subject's records, the stages that would
    be deactivated, every sequence whose usable depth would shrink, the serving depth per
    shard before and after, and whether a shard would fall below the retraining threshold.
    Records no model has trained on yet need no model action and are counted separately.
    """
    records = list(
        Record.objects.filter(subject__external_ref=subject_ref).values_list(
            "pk", "external_id", "status", "dataset_id"
        )
    )
    active = {pk: ext for pk, ext, status, _ in records if status == Record.Status.ACTIVE}
    stages_by_model = _stages_reading(active)
    cells, trained_records = _trained_cells(active)
    models = [
        _model_impact(model, cells[model.pk], stages_by_model.get(model.pk, []))
        for model in UnlearningModel.objects.filter(pk__in=list(cells)).order_by("pk")
    ]
    return {
        "subject_ref": subject_ref,
        "records_found": len(active),
        "records_already_erased": len(records) - len(active),
        "records_not_yet_trained": len(set(active) - trained_records),
        "datasets": sorted({ds for _, _, _, ds in records}),
        "models": models,
        "computed_at": timezone.now().isoformat(),
    }


def impact_stamp(impact: dict[str, Any], *, audit_seq: int) -> dict[str, Any]:
    """A cheap version stamp of what ``impact`` was computed from.

    ``audit_seq`` is the audit trail's head read *before* the impact was computed: every
    state change appends its audit event in its own transaction, under the chain's lock,
    so any change committed after that read has a higher sequence number. Two changes the
    trail does not record alter the preview too (a training task marked done, a stage
    deactivated by its own worker), so the stamp adds the models' task and stage counts.
    """
    return {"audit_seq": audit_seq, "models": _model_counts(_model_ids(impact))}


def impact_unchanged(stamp: dict[str, Any], impact: dict[str, Any], *, request_id: int) -> bool:
    """Whether ``impact`` (stamped with ``stamp``) is still what erasing the subject would do:
    no audit event since the stamp but the request's own, and the same counts. One
    statement, whatever the size of the models."""
    if not stamp or "audit_seq" not in stamp:
        return False
    ids = _model_ids(impact)
    if not ids:
        changed = AuditEvent.objects.filter(seq__gt=stamp["audit_seq"]).exclude(
            object_type="erasurerequest", object_id=str(request_id)
        )
        return not changed.exists() and stamp.get("models") == {}
    rows = _counted(ids, since=(stamp["audit_seq"], str(request_id)))
    counts = {str(pk): [live, trained, done] for pk, live, trained, done, _ in rows}
    return not any(changed for *_, changed in rows) and stamp.get("models") == counts


def _model_ids(impact: dict[str, Any]) -> list[int]:
    return sorted(m["model_id"] for m in impact.get("models", []))


def _counted(
    model_ids: list[int], *, since: tuple[int, str] = (0, "")
) -> list[tuple[int, int, int, int, bool]]:
    """Per model, in pk order: its live and trained stages, its finished tasks, and whether
    an audit event after ``since`` = (seq, request id) is not that erasure request's own.

    One plain statement of subqueries (the ORM's form of it cost more to compile than to
    run), on the indexes of the foreign keys and of the trail's ``seq``.
    """
    t = {m.__name__: m._meta.db_table for m in (Stage, Shard, TrainingTask, TrainingJob)}
    live = ", ".join(["%s"] * len(LIVE_STATES))
    ids = ", ".join(["%s"] * len(model_ids))
    # Table names from the models, every value a parameter.
    sql = f"""
        SELECT m.id,
          (SELECT count(*) FROM {t["Stage"]} s JOIN {t["Shard"]} h ON h.id = s.shard_id
            WHERE h.model_id = m.id AND s.state IN ({live})),
          (SELECT count(*) FROM {t["Stage"]} s JOIN {t["Shard"]} h ON h.id = s.shard_id
            WHERE h.model_id = m.id AND s.state = %s),
          (SELECT count(*) FROM {t["TrainingTask"]} k JOIN {t["TrainingJob"]} j
            ON j.id = k.job_id WHERE j.model_id = m.id AND k.status = %s),
          EXISTS (SELECT 1 FROM {AuditEvent._meta.db_table} e WHERE e.seq > %s
            AND NOT (e.object_type = 'erasurerequest' AND e.object_id = %s))
        FROM {UnlearningModel._meta.db_table} m WHERE m.id IN ({ids}) ORDER BY m.id
    """  # noqa: S608
    params: list[Any] = [*LIVE_STATES, Stage.State.TRAINED, TrainingTask.Status.DONE, *since]
    params += model_ids
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (pk, live, trained, done, bool(changed)) for pk, live, trained, done, changed in cursor
        ]


def _model_counts(model_ids: list[int]) -> dict[str, Any]:
    """Per model (as JSON keys): its live and trained stages and its finished tasks."""
    if not model_ids:
        return {}
    return {str(pk): [live, trained, done] for pk, live, trained, done, _ in _counted(model_ids)}


def _stages_reading(record_ids: Collection[int]) -> dict[int, list[Stage]]:
    """Live stages (any generation) whose lineage holds one of the records, per model."""
    stages = (
        Stage.objects.filter(
            slices__assignments__record_id__in=list(record_ids), state__in=LIVE_STATES
        )
        .select_related("shard")
        .distinct()
        .order_by("pk")
    )
    out: dict[int, list[Stage]] = defaultdict(list)
    for stage in stages:
        out[stage.shard.model_id].append(stage)
    return out


def _trained_cells(record_ids: Collection[int]) -> tuple[dict[int, set[Cell]], set[int]]:
    """Per model the cells holding the records, and which records some model trained on."""
    assigned = SliceAssignment.objects.filter(record_id__in=list(record_ids)).select_related(
        "slice__shard"
    )
    cells: dict[int, set[Cell]] = defaultdict(set)
    trained: set[int] = set()
    for a in assigned:
        cells[a.model_id].add((a.generation, a.slice.shard.index, a.slice.index))
        trained.add(a.record_id)
    return cells, trained


def _model_impact(model: UnlearningModel, cells: set[Cell], stages: list[Stage]) -> dict[str, Any]:
    gone = [s.pk for s in stages]
    # The generation serving now and, while a retrain runs, the one being trained.
    manifest = manifest_latest(model)
    serving = manifest.generation if manifest else None
    per_generation = [
        _generation_impact(model, generation, cells, gone)
        for generation in sorted(g for g in {model.generation, serving or 0} if g > 0)
    ]
    # Retraining is judged on the generation that will serve: the serving one, else the
    # newest (a model whose first training has not finished).
    live = [g for g in per_generation if g["generation"] == serving] or per_generation[-1:]
    return {
        "model_id": model.pk,
        "name": model.name,
        "stages_to_deactivate": len(gone),
        "generations": per_generation,
        "retraining_needed": any(
            s["depth_after"] < model.retrain_threshold for g in live for s in g["shards"]
        ),
    }


def _generation_impact(
    model: UnlearningModel, generation: int, cells: set[Cell], gone: list[int]
) -> dict[str, Any]:
    """Serving depth per shard before and after, in one generation, and the cut sequences.

    The generation is read once (``generation_grid``) and the rule asked three times.
    """
    grid = generation_grid(model, generation)
    before = {e["shard"]: e for e in manifest_entries(model, generation=generation, grid=grid)}
    after = {
        e["shard"]: e
        for e in manifest_entries(model, generation=generation, assume_deactivated=gone, grid=grid)
    }
    shards = [
        {
            "shard": index,
            "depth_before": before[index]["depth"] if index in before else 0,
            "depth_after": after[index]["depth"] if index in after else 0,
            "sequence_before": before[index]["sequence"] if index in before else None,
            "sequence_after": after[index]["sequence"] if index in after else None,
            "slices": sorted(s for g, sh, s in cells if g == generation and sh == index),
        }
        for index in sorted({sh for g, sh, _ in cells if g == generation})
    ]
    return {
        "generation": generation,
        "shards": shards,
        "sequences_truncated": _truncated(grid, gone),
    }


def _truncated(grid: Grid, gone: list[int]) -> list[dict[str, Any]]:
    """Sequences whose usable depth shrinks: (shard, sequence, order, depth before, after)."""
    gone_set = set(gone)
    out = []
    for shard in grid.shards:
        states = {
            prefix: (s.pk, s.state)
            for (shard_id, prefix), s in grid.stages.items()
            if shard_id == shard.pk
        }
        for seq in grid.sequences[shard.pk]:
            before, after = _usable_depths(seq.order, states, gone_set)
            if after < before:
                out.append(
                    {
                        "shard": shard.index,
                        "sequence": seq.index,
                        "order": seq.order,
                        "depth_before": before,
                        "depth_after": after,
                    }
                )
    return out


def _usable_depths(
    order: list[int], states: dict[str, tuple[int, str]], gone: set[int]
) -> tuple[int, int]:
    """How deep the sequence is trained now, and how deep it stays with ``gone`` removed."""
    before = after = 0
    for d in range(1, len(order) + 1):
        pk, state = states.get(engine.prefix_text(order[:d]), (None, None))
        if state != Stage.State.TRAINED:
            break
        before = d
        if after == d - 1 and pk not in gone:
            after = d
    return before, after
