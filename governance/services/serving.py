"""Serving manifests and predictions.

A manifest says, per shard of the current generation, which sequence serves and at what
depth, with the stage ids and tensor digests. A shard's usable depth per sequence is the
number of leading stages still ``trained``; the engine's rule picks the longest (ties: the
lowest sequence index). Only sequences whose training task finished are considered, so the
manifest does not churn stage by stage while a job runs.

Predictions run in the web process with a cache keyed by manifest version: a request reads
the current version (one indexed query), reuses the loaded ensemble when it matches and
rebuilds it when it does not, so it never reloads what is loaded and never serves a stale
manifest.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from governance import engine
from governance.artifacts import stage_cache_sweep, store_identity
from governance.canonical import canonical_bytes
from governance.errors import ApplicationError
from governance.models import ServingManifest, Stage, UnlearningModel
from governance.selectors.manifests import manifest_current, manifest_entries, manifest_latest
from governance.services.audit import audit_event_append
from governance.services.webhooks import model_notify


def manifest_digest(model_id: int, generation: int, entries: list[dict[str, Any]]) -> str:
    body = {"model": model_id, "generation": generation, "entries": entries}
    canonical = canonical_bytes(body)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def manifest_refresh(
    *, model: UnlearningModel, reason: str, actor: Any = "worker"
) -> ServingManifest | None:
    """Publish a new manifest version when the serving choice changed.

    The first manifest waits until every shard has a serving sequence; after that a
    manifest is published whenever the choice differs (a shard that can no longer serve
    drops out). While a new generation trains, the serving generation keeps being
    refreshed, so an erasure that deactivates its stages takes effect at once (I2).
    Serialised per model by a row lock so versions never collide.

    Returns:
        The new manifest, or None when nothing changed.
    """
    with transaction.atomic():
        model = UnlearningModel.objects.select_for_update().get(pk=model.pk)
        return manifest_publish(
            model=model, current=manifest_latest(model), reason=reason, actor=actor
        )


def manifest_publish(
    *,
    model: UnlearningModel,
    current: ServingManifest | None,
    reason: str,
    actor: Any = "worker",
) -> ServingManifest | None:
    """``manifest_refresh`` for a caller whose transaction already holds ``model``'s row lock
    and read ``current`` (``manifest_latest``) under it, as an erasure does: no second lock,
    no second read. The new manifest, or None when nothing changed."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("manifest_publish runs in the transaction that locked the model")
    entries = manifest_entries(model)
    generation = model.generation
    # A new generation (first training or a retrain) takes over only once every one
    # of its shards can serve; until then the previous generation keeps serving.
    new_generation = current is None or current.generation != model.generation
    if new_generation and len(entries) < model.num_shards:
        if current is None:
            return None
        generation = current.generation
        entries = manifest_entries(model, generation=generation)
    digest = manifest_digest(model.pk, generation, entries)
    if current is not None and current.digest == digest:
        return None
    manifest = ServingManifest.objects.create(
        model=model,
        version=(current.version + 1) if current else 1,
        generation=generation,
        entries=entries,
        digest=digest,
        reason=reason[:200],
    )
    audit_event_append(
        actor=actor,
        action="manifest.published",
        obj=manifest,
        payload={
            "model": model.pk,
            "version": manifest.version,
            "generation": generation,
            "digest": digest,
            "depths": {e["shard"]: e["depth"] for e in entries},
            "reason": reason,
        },
    )
    model_notify(
        "model.serving_changed",
        model.pk,
        manifest_version=manifest.version,
        generation=generation,
        digest=digest,
        reason=reason,
    )
    return manifest


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float]


@dataclass(frozen=True)
class PredictResult:
    predictions: list[Prediction]
    manifest_version: int


class _PredictorCache:
    """Per model: the manifest loaded and the ensemble serving it.

    The key is the manifest's identity (row, version and digest) and the artifact store
    it reads, not the version number alone: a database restored from a backup or a test
    database reuses primary keys and versions for different content.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[tuple[Any, ...], Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def _drop_evicted(self, *, keep: int) -> None:
        """Let go of other models' ensembles on hosts the bounded pool evicted (lock held).

        An ensemble holds its host: kept, it would keep an evicted host alive and the pool's
        bound would mean nothing. The model being served is rebuilt by the caller instead.
        """
        for pk in [p for p, c in self._items.items() if not engine.hosts.holds(c[1].host)]:
            if pk != keep:
                self._items.pop(pk)[1].cache.clear()

    @staticmethod
    def _identity(model: UnlearningModel, manifest: ServingManifest) -> tuple[Any, ...]:
        store = engine.artifact_store(model, manifest.generation)
        return (manifest.pk, manifest.version, manifest.digest, store_identity(), store.prefix)

    def ensemble(self, model: UnlearningModel, manifest: ServingManifest) -> Any:
        from unlearning.artifacts import ArtifactDigestError, StageKey
        from unlearning.ensemble import Ensemble, ShardChoice, StageCache

        with self._lock:
            self._drop_evicted(keep=model.pk)
            identity = self._identity(model, manifest)
            cached = self._items.get(model.pk)
            if cached is not None and cached[0] == identity and engine.hosts.holds(cached[1].host):
                return cached[1]
            if cached is not None:
                # The manifest moved on (an erasure or a retrain): drop the old ensemble's
                # stages and wipe the host, so deactivated tensors leave memory now, and
                # drop destroyed stages' files from this process's cache folder, in case
                # the eviction broadcast missed this process.
                _purge(cached)
                stage_cache_sweep()
            host, host_lock = engine.hosts.get(model, "serving")
            self._drop_evicted(keep=model.pk)  # building this host may have evicted others
            store = engine.artifact_store(model, manifest.generation)
            choices = [
                ShardChoice(
                    e["shard"],
                    e["sequence"],
                    tuple(
                        StageKey(e["shard"], tuple(int(x) for x in s["prefix"].split("-")))
                        for s in e["stages"]
                    ),
                )
                for e in manifest.entries
            ]
            digests = {
                (e["shard"], s["prefix"]): s["digest"]
                for e in manifest.entries
                for s in e["stages"]
            }
            # The object each stage row names (one training attempt's; see StageStore).
            ids = {
                s["id"]: (e["shard"], s["prefix"]) for e in manifest.entries for s in e["stages"]
            }
            object_keys = {
                StageKey(ids[pk][0], tuple(int(x) for x in ids[pk][1].split("-"))): key
                for pk, key in Stage.objects.filter(pk__in=list(ids))
                .exclude(artifact_key="")
                .values_list("pk", "artifact_key")
            }

            def load(key: StageKey) -> Any:
                # Serve only the bytes the manifest names: a swapped file is refused.
                expected = digests.get((key.shard, engine.prefix_text(key.prefix)), "?")
                try:
                    return store.load(key, expected, object_keys.get(key))
                except ArtifactDigestError:
                    raise ApplicationError(
                        code="artifact_mismatch",
                        status=500,
                        message=f"stage {key.slug()}: tensor digest differs from the manifest",
                    ) from None

            ensemble: Any
            if model.dataset.task == "generation":
                from unlearning.backbones import load_tokenizer
                from unlearning.generation import EnsembleGenerator

                ensemble = EnsembleGenerator(
                    host,
                    choices,
                    StageCache(load),
                    load_tokenizer(model.base_model),
                    max_length=model.max_length,
                )
            else:
                ensemble = Ensemble(host, choices, StageCache(load), engine.collator(model))
            self._items[model.pk] = (identity, ensemble, host_lock)
            return ensemble

    def evict(self, model_id: int) -> None:
        """Forget a model's ensemble and wipe its tensors from memory (stages destroyed)."""
        with self._lock:
            cached = self._items.pop(model_id, None)
            if cached is not None:
                _purge(cached)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _purge(cached: tuple[tuple[Any, ...], Any, threading.Lock]) -> None:
    _, ensemble, host_lock = cached
    ensemble.cache.clear()
    with host_lock:
        ensemble.host.wipe()


predictors = _PredictorCache()


def task_require(model: UnlearningModel, *tasks: str, use: str) -> None:
    """Refuse a request the model's task cannot answer, naming what to call instead."""
    task = model.dataset.task
    if task not in tasks:
        raise ApplicationError(
            code="task_mismatch",
            message=f"model: a {task} model; {use}",
            details={"model": [f"task is {task}"]},
        )


def _with_ensemble(model: UnlearningModel, run: Any) -> tuple[Any, int]:
    """Run ``run(ensemble)`` on the current manifest's ensemble, under the host's lock.

    An erasure or a retrain may destroy a stage's bytes between reading the manifest and
    loading the stage; the manifest has then moved on, so the request is answered once
    more with the new one rather than failing.
    """
    from unlearning.ensemble import NoServingShardError

    for attempt in range(2):
        manifest = manifest_current(model)
        ensemble = predictors.ensemble(model, manifest)
        _, lock = engine.hosts.get(model, "serving")
        try:
            with lock:  # the host switches prefixes per shard: one request at a time
                return run(ensemble), manifest.version
        except FileNotFoundError:
            predictors.evict(model.pk)
            if attempt:
                raise
        except NoServingShardError:
            raise ApplicationError(
                code="model_not_servable",
                status=409,
                message="model: no shard has a clean prefix left; retraining is scheduled",
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def model_predict(*, model: UnlearningModel, inputs: list[Any]) -> PredictResult:
    """Predict with the current manifest; the result names the manifest version used.

    ``inputs`` are texts for a classification model and image bytes (already checked by
    ``image_inputs``) for an image classifier.
    """
    if model.dataset.task == "image_classification":
        from unlearning.images import image_tensor

        payloads = [image_tensor(data, model.base_model) for data in inputs]
    else:
        task_require(model, "classification", use="ask models/{id}/generate/")
        payloads = inputs
    probs, version = _with_ensemble(model, lambda ensemble: ensemble.predict_proba(payloads))
    labels = model.dataset.labels
    predictions = [
        Prediction(
            labels[int(row.argmax())],
            {lab: round(float(p), 6) for lab, p in zip(labels, row, strict=True)},
        )
        for row in probs
    ]
    return PredictResult(predictions, version)


@dataclass(frozen=True)
class GenerateResult:
    outputs: list[dict[str, Any]]  # {"text", "tokens"} per prompt
    manifest_version: int


def model_generate(
    *,
    model: UnlearningModel,
    prompts: list[Any],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
) -> GenerateResult:
    """Generate with the current manifest's serving prefixes (the mean of their distributions).

    Greedy at temperature 0; otherwise sampled, deterministic for a seed. ``prompts`` are
    strings or lists of ``{role, content}`` turns.
    """
    task_require(model, "generation", use="ask models/{id}/predict/")
    turns = [
        p if isinstance(p, str) else tuple((str(t["role"]), str(t["content"])) for t in p)
        for p in prompts
    ]

    def run(generator: Any) -> Any:
        return generator.generate(
            turns,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )

    generated, version = _with_ensemble(model, run)
    return GenerateResult([{"text": g.text, "tokens": list(g.tokens)} for g in generated], version)
