"""Replay verification (invariant I4, DESIGN §5 flow 5): retrain what serves, compare bits.

For every shard of the current serving manifest, the serving sequence's prefix is trained
again from a freshly built base model on the records that lineage assigns to its slices,
with the model's settings and seed, and each replayed stage's tensor digest is compared
with the digest recorded on its Stage row. Nothing stored is read back, so a stage file
that was swapped, a record whose content drifted after training, or a runtime that no
longer reproduces the training bits all show up as a mismatch.

Record order does not matter: ``train_stage`` sorts a stage's examples by their key (the
external id) before it draws the batch order, so any query order gives the same tensors.

Bits reproduce on one device kind at one precision (``unlearning.device``): a stage
trained on ``cuda/bf16`` cannot be compared with a replay on ``cpu/fp32``, so such a stage
(and every stage after it in its prefix, which a replay would build on different parents)
is reported as not compared, with both sides named, never as a mismatch. The GPU model,
CUDA and driver versions are recipe facts: when they differ the digests are still
compared, and the differences are listed as recipe warnings.

A replay trains, so it runs outside any transaction and can take as long as training the
serving stages did; only the audit event at the end is written in one. No stage, artifact
or manifest is modified.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from governance import engine
from governance.errors import ApplicationError
from governance.models import Record, SliceAssignment, Stage, UnlearningModel
from governance.selectors.manifests import manifest_current
from governance.services.audit import audit_event_append

if TYPE_CHECKING:
    from unlearning.assembly import AdapterHost


@dataclass(frozen=True)
class StageReplay:
    """One serving stage: the digest recorded at training and the one the replay gave.

    Attributes:
        reason: why the stage does not match; "" when it matches.
        compared: False when this process cannot replay the stage's bits (another device
            kind or precision); ``matches`` is then False too and ``reason`` says why.
    """

    stage_id: int
    shard: int
    prefix: str
    position: int
    recorded_digest: str
    replayed_digest: str
    matches: bool
    reason: str = ""
    compared: bool = True


@dataclass(frozen=True)
class ReplayReport:
    """The outcome of one verification.

    Attributes:
        ok: every replayed stage matches, and there was at least one (an empty replay
            proves nothing, so it never passes).
        recipe_warnings: recorded recipe fields that differ from this runtime, one line
            each; they explain a digest mismatch but are not failures by themselves.
        replays_on: this process's device kind and precision, e.g. ``cpu/fp32``.
    """

    model_id: int
    manifest_version: int
    stages: list[StageReplay]
    ok: bool
    recipe_warnings: list[str]
    replays_on: str = ""

    @property
    def not_compared(self) -> list[StageReplay]:
        """Stages this process could not replay bit for bit (another device or precision)."""
        return [s for s in self.stages if not s.compared]


def model_replay_verify(
    *, actor: Any, model: UnlearningModel, shards: Collection[int] | None = None
) -> ReplayReport:
    """Replay the model's serving stages from lineage and record the result in the trail.

    Args:
        actor: who asked (a user, or a component name such as "cli").
        model: the model whose current manifest is verified.
        shards: only these shard indices; None verifies every serving shard.

    Raises:
        ApplicationError: the model has no manifest yet, or a requested shard does not
            serve in it.
    """
    manifest = manifest_current(model)
    entries = list(manifest.entries)
    if shards is not None:
        serving = {int(e["shard"]) for e in entries}
        absent = sorted(set(shards) - serving)
        if absent:
            raise ApplicationError(
                code="invalid",
                message=(
                    f"shards: shard {', '.join(map(str, absent))} does not serve in manifest "
                    f"v{manifest.version} (serving: {', '.join(map(str, sorted(serving)))})"
                ),
                details={"shards": absent},
            )
        entries = [e for e in entries if int(e["shard"]) in set(shards)]
    ids = [int(s["id"]) for e in entries for s in e["stages"]]
    rows = {
        s.pk: s
        for s in Stage.objects.filter(pk__in=ids, shard__model=model)
        .select_related("shard")
        .prefetch_related("slices")
    }
    warnings = _RecipeWarnings(model)
    for stage in rows.values():
        warnings.check(stage)
    replayer = _Replayer(model, manifest.generation)
    results: list[StageReplay] = []
    for entry in entries:
        results.extend(replayer.entry(entry, rows))
    report = ReplayReport(
        model_id=model.pk,
        manifest_version=manifest.version,
        stages=results,
        ok=bool(results) and all(r.matches for r in results),
        recipe_warnings=warnings.lines(),
        replays_on=replayer.replays_on,
    )
    with transaction.atomic():
        audit_event_append(
            actor=actor,
            action="model.replay_verified",
            obj=model,
            payload={
                "manifest_version": report.manifest_version,
                "ok": report.ok,
                "stages": [
                    {"id": r.stage_id, "prefix": r.prefix, "shard": r.shard, "matches": r.matches}
                    # A stage this process could not compare says so (absent: compared).
                    | ({} if r.compared else {"compared": False, "reason": r.reason})
                    for r in results
                ],
                "recipe_warnings": report.recipe_warnings,
            },
        )
    return report


class _Replayer:
    """Replays manifest entries on one fresh host, built on first use.

    The host is new for this verification, never one of ``engine.hosts``: those belong to
    training and serving in this process. Within the verification one host serves every
    shard, as during training: ``train_stage`` loads a stage's parents and switches off
    the groups below it, so what a previous shard left in the host never reaches a stage.
    """

    def __init__(self, model: UnlearningModel, generation: int) -> None:
        self.model = model
        self.generation = generation
        self.device = engine.hosts.device()
        self.precision = engine.train_settings(model).precision
        self.replays_on = f"{self.device.type}/{self.precision}"
        self._host: AdapterHost | None = None

    def host(self) -> AdapterHost:
        if self._host is None:
            from unlearning.assembly import AdapterHost

            self._host = AdapterHost(
                engine.base_build(self.model),
                num_groups=self.model.num_slices,
                lora=engine.lora_settings(self.model),
                device=self.device,
            )
        return self._host

    def comparable_depth(self, chain: list[Stage]) -> int:
        """How many leading stages of a chain this process can replay bit for bit.

        A stage compares only when it and every stage before it were trained on this
        device kind at this precision: a replay rebuilds the whole prefix here.
        """
        return next(
            (d for d, s in enumerate(chain) if trained_on(s.recipe or {}) != self.replays_on),
            len(chain),
        )

    def not_comparable(self, stage: Stage, first: Stage) -> str:
        """Why ``stage`` cannot be compared: it, or ``first``, its parent, ran elsewhere."""
        whose = "stage" if stage.pk == first.pk else f"its parent stage {first.prefix}"
        return (
            f"cannot compare: {whose} trained on {trained_on(first.recipe or {})}, "
            f"this process replays on {self.replays_on}"
        )

    def entry(self, entry: Mapping[str, Any], rows: Mapping[int, Stage]) -> list[StageReplay]:
        """Replay one shard's serving prefix; one result per serving stage, stage 1 first."""
        shard = int(entry["shard"])
        listed = list(entry["stages"])
        stages = [rows.get(int(s["id"])) for s in listed]
        if any(s is None for s in stages) or not stages:
            return [
                _failed(shard, s, rows.get(int(s["id"])), "stage row missing from the model")
                for s in listed
            ]
        chain = [s for s in stages if s is not None]
        prefix = chain[-1].prefix_tuple
        by_slice = self._lineage(chain[-1], prefix)
        # Stages from the first one that reads an erased record on cannot be replayed:
        # the content is gone, and such a stage must not serve at all (I2).
        erased = {
            i: [r for r in by_slice.get(i, []) if r.status == Record.Status.ERASED] for i in prefix
        }
        clean = next((d for d, i in enumerate(prefix) if erased[i]), len(prefix))
        comparable = self.comparable_depth(chain)
        replayed: list[str] = []
        lineage: list[str] = []
        if min(clean, comparable):
            from unlearning.replay import replay_prefix

            artifacts = replay_prefix(
                self.host(),
                shard=shard,
                prefix=prefix[: min(clean, comparable)],
                slices={
                    i: engine.examples(by_slice.get(i, []), self.model) for i in prefix[:clean]
                },
                collate=engine.collator(self.model),
                settings=engine.train_settings(self.model),
                model_seed=self.model.seed,
            )
            replayed = [a.digest for a in artifacts]
            lineage = [str(a.recipe["lineage"]["digest"]) for a in artifacts]
        results = []
        for depth, (item, stage) in enumerate(zip(listed, chain, strict=True), start=1):
            if depth > clean:
                bad = [r for i in prefix[:depth] for r in erased[i]]
                reason = (
                    f"I2 violation: lineage holds {len(bad)} erased record(s) "
                    f"({', '.join(sorted(r.external_id for r in bad)[:5])}); not replayed"
                )
                results.append(_result(shard, stage, "", reason))
                continue
            if depth > comparable:
                why = self.not_comparable(stage, chain[comparable])
                results.append(_result(shard, stage, "", why, compared=False))
                continue
            results.append(
                _result(
                    shard,
                    stage,
                    replayed[depth - 1],
                    _mismatch(item, stage, prefix[:depth], replayed[depth - 1], lineage[depth - 1]),
                )
            )
        return results

    def _lineage(self, deepest: Stage, prefix: tuple[int, ...]) -> dict[int, list[Record]]:
        """Lineage records per slice index of the shard's generation, as training read them."""
        assignments = SliceAssignment.objects.filter(
            model=self.model,
            generation=self.generation,
            slice__shard=deepest.shard_id,
            slice__index__in=prefix,
        ).select_related("record", "slice")
        by_slice: dict[int, list[Record]] = defaultdict(list)
        for a in assignments:
            by_slice[a.slice.index].append(a.record)
        return by_slice


def _mismatch(
    item: Mapping[str, Any], stage: Stage, prefix: tuple[int, ...], replayed: str, lineage: str
) -> str:
    """Why a replayed stage does not match its record; "" when it does."""
    problems = []
    if stage.prefix != engine.prefix_text(prefix):
        problems.append(f"the manifest lists it where stage {engine.prefix_text(prefix)} belongs")
    if stage.state != Stage.State.TRAINED:
        problems.append(f"stage is {stage.state}, not trained")
    if str(item.get("digest", "")) != stage.tensor_digest:
        problems.append("the manifest names another digest than the stage row records")
    links = {sl.index for sl in stage.slices.all() if sl.shard_id == stage.shard_id}
    if links != set(stage.prefix_tuple) or len(stage.slices.all()) != len(links):
        problems.append("the stage's lineage links differ from its prefix")
    if replayed != stage.tensor_digest:
        if stage.lineage_digest and lineage != stage.lineage_digest:
            why = "the lineage records differ from those it was trained on"
        else:
            why = "same lineage records, so their content or the runtime changed"
        problems.append(f"replayed tensors differ from the recorded digest ({why})")
    return "; ".join(problems)


def trained_on(recipe: Mapping[str, Any]) -> str:
    """``kind/precision`` a stage's recipe records (recipes from before devices: cpu/fp32)."""
    runtime = recipe.get("runtime") or {}
    kind = runtime.get("device", "cpu") if isinstance(runtime, Mapping) else "cpu"
    return f"{kind}/{_recorded_settings(recipe).get('precision', 'fp32')}"


def _recorded_settings(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's training settings; keys a recipe predates take their legacy value
    (fp32 before precisions, ``unlearning.recipe.LEGACY_SETTINGS`` for the later ones)."""
    from unlearning.recipe import LEGACY_SETTINGS

    recorded = recipe.get("settings")
    if not isinstance(recorded, Mapping):
        return {}
    return {"precision": "fp32", **LEGACY_SETTINGS, **recorded}


def _result(
    shard: int, stage: Stage, replayed: str, reason: str, *, compared: bool = True
) -> StageReplay:
    return StageReplay(
        stage_id=stage.pk,
        shard=shard,
        prefix=stage.prefix,
        position=stage.position,
        recorded_digest=stage.tensor_digest,
        replayed_digest=replayed,
        matches=not reason,
        reason=reason,
        compared=compared,
    )


def _failed(shard: int, item: Mapping[str, Any], stage: Stage | None, reason: str) -> StageReplay:
    if stage is not None:
        return _result(shard, stage, "", "another stage of this prefix is missing")
    prefix = str(item.get("prefix", ""))
    return StageReplay(
        stage_id=int(item["id"]),
        shard=shard,
        prefix=prefix,
        position=len(prefix.split("-")) if prefix else 0,
        recorded_digest=str(item.get("digest", "")),
        replayed_digest="",
        matches=False,
        reason=reason,
    )


class _RecipeWarnings:
    """Differences between what each stage recorded and what this replay runs with.

    Collected per (field, recorded, current) so a model whose stages share one recipe
    yields one line per difference, naming the stages it concerns.
    """

    def __init__(self, model: UnlearningModel) -> None:
        from unlearning.recipe import runtime_recipe

        self.runtime = runtime_recipe(engine.hosts.device())
        self.expected: dict[str, Any] = {
            "settings": asdict(engine.train_settings(model)),
            "lora": engine.lora_recipe(model),
            "model_seed": model.seed,
        }
        self._found: dict[str, list[int]] = defaultdict(list)

    def check(self, stage: Stage) -> None:
        recipe = stage.recipe or {}
        if not recipe:
            self._found["no recorded recipe"].append(stage.pk)
            return
        for line in _runtime_differences(dict(recipe.get("runtime") or {}), self.runtime):
            self._found[line].append(stage.pk)
        recorded = {k: recipe.get(k) for k in self.expected}
        if recipe.get("settings") is not None:
            recorded["settings"] = _recorded_settings(recipe)
        for name, now in _flatten(self.expected).items():
            then = _flatten(recorded).get(name)
            if then != now:
                self._found[f"{name}: trained with {then!r}, the model now says {now!r}"].append(
                    stage.pk
                )

    def lines(self) -> list[str]:
        return [
            f"{text} (stage{'s' if len(ids) > 1 else ''} {', '.join(map(str, sorted(ids)))})"
            for text, ids in sorted(self._found.items())
        ]


def _runtime_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Runtime fields that differ, as "field: trained with X, replayed with Y".

    The thread count is reported only when the CPU determinism pins were not in force on
    both sides: with them, results do not depend on it (unlearning.recipe).
    """
    from unlearning.recipe import DETERMINISM_ENV

    pinned = recorded.get("env") == DETERMINISM_ENV and current.get("env") == DETERMINISM_ENV
    then, now = _flatten(recorded), _flatten(current)
    lines = []
    for name in sorted(set(then) | set(now)):
        if name == "threads" and pinned:
            continue
        if then.get(name) != now.get(name):
            lines.append(
                f"{name}: trained with {then.get(name, 'nothing')!r}, "
                f"replayed with {now.get(name, 'nothing')!r}"
            )
    return lines


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
