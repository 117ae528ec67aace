"""Reads: lineage. Three indexed statements, whatever the table sizes.

``subject_lineage`` answers "which model components learned from this person?" with at
most three statements, each driven by an index (tests/governance/test_lineage_explain.py
runs EXPLAIN on each against a populated PostgreSQL table and refuses a sequential scan of
a large table):

1. the subject's records: the subject's unique ref, then ``record_subject``;
2. the models of those records' datasets, each with its latest manifest (a subquery per
   model on ``manifest_unique_version``);
3. the records' assignments in the generations shown, with their slice, shard and every
   stage linked to the slice: ``assignment_one_per_generation``, then primary keys and the
   stage-slice link's slice index.

The statements are plain SQL read as tuples (no query building, no model instances): at
this size both cost more than the database's work does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from governance.models import Dataset

# Plain SQL, valid on PostgreSQL and SQLite: building these three statements through the
# ORM took six times as long as running them (at 1M records: 7.6 ms p50 for the selector,
# 0.9 ms in the database). ``{scope}`` is the viewer's dataset filter, when there is one.
_RECORDS = (
    "SELECT r.id, r.dataset_id, r.external_id, r.status, r.created_at, r.erased_at "
    "FROM governance_record r WHERE r.subject_id = "
    "(SELECT s.id FROM governance_subject s WHERE s.external_ref = %s){scope} "
    "ORDER BY r.dataset_id, r.external_id"
)
_MODELS = (
    "SELECT m.id, m.name, m.generation, m.dataset_id, f.version, f.generation, f.entries "
    "FROM governance_unlearningmodel m LEFT JOIN governance_servingmanifest f "
    "ON f.model_id = m.id AND f.version = "
    "(SELECT max(g.version) FROM governance_servingmanifest g WHERE g.model_id = m.id) "
    "WHERE m.generation > 0 AND m.dataset_id IN ({datasets}) ORDER BY m.id"
)
_ASSIGNMENTS = (
    'SELECT a.record_id, a.model_id, a.generation, sh."index", sl."index", '
    "st.id, st.prefix, st.position, st.state "
    "FROM governance_sliceassignment a "
    "JOIN governance_slice sl ON sl.id = a.slice_id "
    "JOIN governance_shard sh ON sh.id = sl.shard_id "
    "LEFT JOIN governance_stage_slices link ON link.slice_id = sl.id "
    "LEFT JOIN governance_stage st ON st.id = link.stage_id "
    "WHERE a.record_id IN ({records}) AND a.model_id IN ({models}) "
    "AND a.generation IN ({generations}) ORDER BY a.generation"
)


@dataclass(frozen=True)
class _Model:
    pk: int
    name: str
    generation: int
    dataset_id: int
    manifest_version: int | None
    stage_ids: frozenset[int]  # the stages the latest manifest serves
    # The generations whose stages serve or may serve: the manifest's, and the newest
    # (training, or waiting to swap in). Lineage shows both while a retrain runs.
    generations: frozenset[int]


def _marks(values: Any) -> str:
    return ", ".join(["%s"] * len(values))


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def _models(dataset_ids: list[int]) -> list[_Model]:
    """The trained models of ``dataset_ids``, each with its latest manifest (one query)."""
    models = []
    rows = _rows(_MODELS.format(datasets=_marks(dataset_ids)), dataset_ids)
    for pk, name, generation, dataset_id, version, manifest_generation, entries in rows:
        entries = _json(entries) or []
        ids = frozenset(s["id"] for e in entries for s in e["stages"])
        shown = {generation, *([manifest_generation] if version is not None else [])}
        models.append(_Model(pk, name, generation, dataset_id, version, ids, frozenset(shown)))
    return models


def _json(value: Any) -> Any:
    # Read without a model field, a JSON column arrives as its text.
    return json.loads(value) if isinstance(value, str) else value


def _time(value: Any) -> Any:
    # SQLite hands a raw query its stored text (UTC, naive); PostgreSQL an aware datetime.
    if isinstance(value, str):
        parsed = parse_datetime(value)
        return timezone.make_aware(parsed, UTC) if parsed and timezone.is_naive(parsed) else parsed
    return value


def _scope(datasets: QuerySet[Dataset] | None) -> tuple[str, list[Any]]:
    """The viewer's dataset filter as SQL; none for every dataset (an unfiltered query)."""
    if datasets is None or (not datasets.query.where and not datasets.query.is_sliced):
        return "", []
    sql, params = datasets.values("pk").query.sql_with_params()
    return f" AND r.dataset_id IN ({sql})", list(params)


def subject_lineage(
    *, subject_ref: str, datasets: QuerySet[Dataset] | None = None
) -> dict[str, Any]:
    """A subject's records and, per model, the shard, slice and stages that read them.

    ``subject_ref`` is in its comparable form (``governance.subject_refs``). Every
    generation that serves or may serve is shown: during a retrain, the serving
    generation's stages and the new generation's, each entry naming its generation.
    ``datasets`` limits the answer to the viewer's scope (the API and the pages pass
    ``selectors.datasets.datasets_visible(user)``); None means every dataset.
    """
    scope, scope_params = _scope(datasets)
    records = _rows(_RECORDS.format(scope=scope), [subject_ref, *scope_params])
    if not records:
        return {"subject_id": subject_ref, "records": [], "models": []}
    models = _models(sorted({r[1] for r in records}))
    wanted = {(m.pk, g) for m in models for g in m.generations}
    # (model, record) -> generation -> (shard, slice, stages)
    placed: dict[tuple[int, int], dict[int, tuple[int, int, list[dict[str, Any]]]]]
    placed = defaultdict(dict)
    if wanted:
        record_ids = [r[0] for r in records]
        model_ids = [m.pk for m in models]
        generations = sorted({g for _, g in wanted})
        sql = _ASSIGNMENTS.format(
            records=_marks(record_ids), models=_marks(model_ids), generations=_marks(generations)
        )
        serving = {m.pk: m.stage_ids for m in models}
        rows = _rows(sql, [*record_ids, *model_ids, *generations])
        for record_id, model_id, gen, shard, slice_index, stage, prefix, position, state in rows:
            if (model_id, gen) not in wanted:
                continue
            cell = placed[(model_id, record_id)].setdefault(gen, (shard, slice_index, []))
            if stage is not None:  # a slice no stage has read yet
                cell[2].append({"id": stage, "prefix": prefix, "position": position,
                                "state": state, "serving": stage in serving[model_id]})  # fmt: skip
    return {
        "subject_id": subject_ref,
        "records": [
            {
                "dataset": r[1],
                "external_id": r[2],
                "status": r[3],
                "created_at": _time(r[4]),
                "erased_at": _time(r[5]),
            }
            for r in records
        ],
        "models": [_model_lineage(m, records, placed) for m in models],
    }


def _model_lineage(
    model: _Model,
    records: list[tuple[Any, ...]],
    placed: dict[tuple[int, int], dict[int, tuple[int, int, list[dict[str, Any]]]]],
) -> dict[str, Any]:
    trained: list[dict[str, Any]] = []
    not_yet: list[str] = []
    for pk, dataset_id, external_id, *_ in records:
        if dataset_id != model.dataset_id:
            continue
        cells = placed.get((model.pk, pk))
        if not cells:
            not_yet.append(external_id)
            continue
        for generation, (shard, slice_index, stages) in cells.items():
            stages.sort(key=lambda s: (s["position"], s["prefix"]))
            trained.append({"external_id": external_id, "generation": generation,
                            "shard": shard, "slice": slice_index, "stages": stages})  # fmt: skip
    return {
        "model": model.pk,
        "name": model.name,
        "generation": model.generation,
        "manifest_version": model.manifest_version,
        "records": trained,
        "not_yet_trained": not_yet,
    }
