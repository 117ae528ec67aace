"""Erasure execution (the worker's side of flow 3): deactivate, purge, certify.

Execution runs on the ``control`` queue in three idempotent phases, each of which a retry
may repeat after a crash anywhere:

1. **Deactivate** (one transaction, from ``approved`` to ``executing``): the subject's
   records are marked erased and their content wiped (text, label, response, messages,
   image digest; the image key stays, naming what the purge deletes), every stage whose
   lineage holds one of them is deactivated, each affected model publishes its next
   manifest, and the audit events are appended. From this commit on no prediction can use
   those stages (I2).
2. **Purge**: the deactivated stages' bytes are deleted from artifact storage and this
   process's caches, and the stages are marked destroyed with their audit event (I3); the
   erased records' image objects are deleted, every version.
3. **Certify** (one transaction, to ``completed``): the store is asked that no stage and
   no image bytes are left, then the certificate is built from the database, signed with
   Ed25519, stored and the request completed.

Concurrent erasures lock the affected models' rows (in primary-key order) before touching
records and stages, so erasures that share a shard run one after the other and the final
manifest is the one a sequential run would publish. Row updates come before audit appends
in every transaction, because appends take the chain's lock (see services/audit.py); the
certificate's transaction takes it a little earlier, when its body cites the chain's
head, but only after locking the request and marking its stages: what it writes after
that are new rows, which wait on no other transaction's lock. Deactivation and
certificate each hold the chain (``audit_chain_held``): one lock and head read for all
their appends. The sweepers at the end finish what a crash or a lost message left behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from governance.artifacts import artifact_keys_evict_everywhere, stage_bytes_destroy
from governance.certificates.body import certificate_body, certified_stages
from governance.certificates.claims import PASSED, i2_check
from governance.certificates.signing import certificate_digest, certificate_sign
from governance.images import image_bytes_exist, images_delete
from governance.models import (
    AuditCheckpoint,
    DeletionCertificate,
    ErasureRequest,
    Record,
    ServingManifest,
    SliceAssignment,
    Stage,
    Subject,
    UnlearningModel,
)
from governance.selectors.impact import LIVE_STATES
from governance.selectors.manifests import manifest_latest
from governance.services.audit import audit_chain_held, audit_event_append
from governance.services.audit_integrity import audit_checkpoint_create
from governance.services.erasure import erasure_event_create, erasure_request_enqueue
from governance.services.lineage_events import lineage_erasure_event
from governance.services.serving import manifest_publish, predictors
from governance.services.webhooks import erasure_request_notify

Status = ErasureRequest.Status
WORKER = "worker"
ORPHAN_BATCH = 1000


def erasure_request_execute(*, request_id: int) -> str:
    """Carry out an approved request; safe to run again at any point. Returns its status."""
    request = _deactivate(request_id)
    if request is None:
        return ErasureRequest.objects.get(pk=request_id).status
    _purge(request)
    return _certify(request).status


# --- phase 1: deactivate -----------------------------------------------------------------


def _deactivate(request_id: int) -> ErasureRequest | None:
    """Phase 1: records, stages, manifests and audit in one transaction."""
    with transaction.atomic(), audit_chain_held():
        request = ErasureRequest.objects.select_for_update().get(pk=request_id)
        if request.status == Status.EXECUTING:
            return request  # phase 1 committed before; resume with the purge
        if request.status != Status.APPROVED:
            return None
        now = timezone.now()
        models = _lock_models(request.subject_ref)
        before = {m.pk: manifest_latest(m) for m in models}
        record_ids, erased_ids, image_keys = _records_erase(request.subject_ref, now=now)
        deactivated = _deactivate_stages(record_ids)
        models_done = [
            _model_done(request, model, deactivated.get(model.pk, []), before[model.pk])
            for model in models
        ]
        failed = [m["model_id"] for m in models_done if m["i2_check"] != PASSED]
        if failed:
            raise RuntimeError(f"I2 violated after deactivation for models {failed}")
        request.status = Status.EXECUTING
        request.attempts += 1
        request.execution = {
            "executed_at": now.isoformat(),
            "records_erased": erased_ids,
            "image_keys": image_keys,
            "models": models_done,
        }
        request.save(update_fields=["status", "attempts", "execution", "updated_at"])
        _deactivated_events(request, erased_ids, models_done)
        lineage_erasure_event(request=request, state="START")
    return request


def _lock_models(subject_ref: str) -> list[UnlearningModel]:
    """The models trained on the subject's active records, locked in pk order (one statement).

    The models are locked first: concurrent erasures touching one model queue here.
    """
    trained_on = SliceAssignment.objects.filter(
        record__subject__external_ref=subject_ref, record__status=Record.Status.ACTIVE
    ).values("model_id")
    return list(
        UnlearningModel.objects.select_for_update().filter(pk__in=trained_on).order_by("pk")
    )


def _records_erase(subject_ref: str, *, now: datetime) -> tuple[list[int], list[str], list[str]]:
    """Tombstone the subject's records still active (content wiped): their ids, external ids
    and the keys of their image objects, which the purge deletes (the keys stay on the
    tombstones). One ``UPDATE … RETURNING`` (PostgreSQL, SQLite 3.35+)."""
    records, subjects = Record._meta.db_table, Subject._meta.db_table
    # Table names from the models, every value a parameter.
    sql = f"""
        UPDATE {records} SET status = %s, erased_at = %s, text = '', label = '',
            response = '', messages = NULL, image_digest = ''
        WHERE status = %s
          AND subject_id IN (SELECT id FROM {subjects} WHERE external_ref = %s)
        RETURNING id, external_id, image_key
    """  # noqa: S608
    erased_at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [Record.Status.ERASED, erased_at, Record.Status.ACTIVE, subject_ref])
        rows = sorted(cursor.fetchall())
    return [pk for pk, _, _ in rows], [ext for _, ext, _ in rows], [k for *_, k in rows if k]


def _deactivate_stages(record_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Deactivate live stages reading any of the records; locked rows, re-checked state.

    A stage in training is deactivated too: its worker finds it no longer ``training``
    when it finishes, never records it as trained, and deletes what it wrote (I5).
    """
    reading = Stage.objects.filter(slices__assignments__record_id__in=record_ids).values("pk")
    stages = list(
        Stage.objects.select_for_update()
        .filter(pk__in=reading, state__in=LIVE_STATES)
        .select_related("shard")
        .defer("metrics")
        .order_by("pk")
    )
    Stage.objects.filter(pk__in=[s.pk for s in stages]).update(
        state=Stage.State.DEACTIVATED, claimed_until=None
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for s in stages:
        out[s.shard.model_id].append(
            {
                "id": s.pk,
                "generation": s.shard.generation,
                "shard": s.shard.index,
                "prefix": s.prefix,
                "position": s.position,
                "state_before": s.state,
                "tensor_digest": s.tensor_digest,
            }
        )
    return out


def _model_done(
    request: ErasureRequest,
    model: UnlearningModel,
    stages: list[dict[str, Any]],
    before: ServingManifest | None,
) -> dict[str, Any]:
    """Publish the model's next manifest; what phase 1 did to it, as the certificate says.

    The model's row is locked (``_lock_models``) and ``before`` was read under that lock, so
    the manifest in force afterwards is the one just published or, when the choice did not
    change, the one before.
    """
    published = manifest_publish(
        model=model, current=before, reason=f"erasure request {request.pk}", actor=WORKER
    )
    after = published or before
    return {
        "model_id": model.pk,
        "name": model.name,
        "stages": [s["id"] for s in stages],
        "stage_details": stages,
        "manifest_before": _manifest_ref(before),
        "manifest_after": _manifest_ref(after),
        "i2_check": i2_check(model, after),
    }


def _manifest_ref(manifest: ServingManifest | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    return {
        "version": manifest.version,
        "generation": manifest.generation,
        "digest": manifest.digest,
        "depths": {str(e["shard"]): e["depth"] for e in manifest.entries},
    }


def _deactivated_events(
    request: ErasureRequest, erased_ids: list[str], models_done: list[dict[str, Any]]
) -> None:
    erasure_event_create(
        request=request,
        actor=WORKER,
        action="deactivated",
        data={"records": len(erased_ids), "stages": sum(len(m["stages"]) for m in models_done)},
    )
    audit_event_append(
        actor=WORKER,
        action="erasure.deactivated",
        obj=request,
        payload={
            "records_erased": erased_ids,
            "models": [
                {k: m[k] for k in ("model_id", "stages", "manifest_after", "i2_check")}
                for m in models_done
            ],
        },
    )


# --- phase 2: purge ----------------------------------------------------------------------


def _purge(request: ErasureRequest) -> None:
    """Phase 2: destroy the bytes of every stage phase 1 deactivated and of the erased
    records' images (idempotent). The stages are marked destroyed in the certificate's
    transaction (``_certify``), which this purge always precedes: one commit less, and the
    marking and the certificate that names it are durable together."""
    for entry in request.execution.get("models", []):
        stages_destroy(
            stage_ids=entry["stages"], actor=WORKER, reason=f"erasure {request.pk}", mark=False
        )
    record_images_destroy(request)


def record_images_destroy(request: ErasureRequest) -> list[str]:
    """Delete the erased records' image objects, every version (I3 for image bytes);
    returns the keys that still held something, audited when there were any."""
    deleted = images_delete(request.execution.get("image_keys", []))
    if deleted:
        with transaction.atomic():
            audit_event_append(
                actor=WORKER,
                action="record_images.deleted",
                obj=request,
                payload={"objects": len(deleted)},
            )
    return deleted


def stages_destroy(
    *, stage_ids: Iterable[int], actor: Any, reason: str, mark: bool = True
) -> list[int]:
    """Delete deactivated stages' bytes and mark them destroyed (I3). Returns ids destroyed.

    ``mark=False`` deletes the bytes only and returns the ids whose bytes are gone: the
    caller marks them in its own transaction (the erasure's certificate).

    Bytes go first: a crash before the marking leaves a deactivated stage without a file,
    which the next attempt marks. Every object of the stage goes (each training attempt's,
    each version a versioned bucket keeps), from the shared store and this process's
    cache at once; other processes' caches drop them on the eviction broadcast (and their
    sweep), and serving processes never use them anyway: they see the new manifest before
    their next prediction.
    """
    stages = list(
        Stage.objects.filter(pk__in=list(stage_ids), state=Stage.State.DEACTIVATED)
        .select_related("shard__model")
        .order_by("pk")
    )
    if not stages:
        return []
    by_model: dict[int, list[Stage]] = defaultdict(list)
    gone: list[str] = []
    for stage in stages:
        gone += stage_bytes_destroy(stage)
        by_model[stage.shard.model_id].append(stage)
    artifact_keys_evict_everywhere(gone)
    for model_id in by_model:
        predictors.evict(model_id)
    if not mark:
        return [s.pk for s in stages]
    now = timezone.now()
    with transaction.atomic():
        return [
            stage_id
            for model_id, group in by_model.items()
            for stage_id in _mark_destroyed(model_id, group, actor=actor, reason=reason, now=now)
        ]


def _mark_destroyed(
    model_id: int, group: list[Any], *, actor: Any, reason: str, now: datetime
) -> list[int]:
    """Mark the model's stages that are still deactivated destroyed, with one audit event."""
    ids = _destroyed_rows(group, now=now)
    _destroyed_event(model_id, group, ids, actor=actor, reason=reason)
    return ids


def _destroyed_rows(group: list[Any], *, now: datetime) -> list[int]:
    """Mark those of ``group`` still deactivated destroyed; the ids this call marked.

    ``group``: the stages (rows, or anything with ``pk``, ``prefix`` and ``tensor_digest``).
    """
    pks = [s.pk for s in group]
    count = Stage.objects.filter(pk__in=pks, state=Stage.State.DEACTIVATED).update(
        state=Stage.State.DESTROYED, destroyed_at=now
    )
    # artifact_key stays: the name of the object that was deleted, which the certificate's
    # check asks the store about.
    if count == len(pks):
        return pks
    # Some were marked by another purge meanwhile: only those marked here.
    return list(Stage.objects.filter(pk__in=pks, destroyed_at=now).values_list("pk", flat=True))


def _destroyed_event(
    model_id: int, group: list[Any], ids: list[int], *, actor: Any, reason: str
) -> None:
    if ids:
        audit_event_append(
            actor=actor,
            action="stages.destroyed",
            object_type="unlearningmodel",
            object_id=str(model_id),
            payload={
                "reason": reason,
                "stages": [
                    {"id": s.pk, "prefix": s.prefix, "digest": s.tensor_digest}
                    for s in group
                    if s.pk in ids
                ],
            },
        )


# --- phase 3: certify --------------------------------------------------------------------


def _certify(request: ErasureRequest) -> ErasureRequest:
    """Phase 3: build, sign and store the certificate; complete the request."""
    with transaction.atomic(), audit_chain_held():
        request = (
            ErasureRequest.objects.select_for_update(of=("self",))
            .select_related("approved_by")
            .get(pk=request.pk)
        )
        if request.status != Status.EXECUTING:
            return request
        now = timezone.now()
        marked = _purged_mark(request, now=now)
        stages = certified_stages(request.execution.get("models", []))
        leftovers = [pk for pk, s in stages.items() if s.state != Stage.State.DESTROYED]
        if leftovers:
            raise RuntimeError(f"stages {leftovers} still hold bytes; not certifying")
        if images_left := image_bytes_exist(request.execution.get("image_keys", [])):
            raise RuntimeError(f"image bytes left ({images_left[:5]}); not certifying")
        body = certificate_body(request=request, issued_at=now, stages=stages)
        certificate = DeletionCertificate.objects.create(
            request=request,
            certificate_id=body["certificate_id"],
            envelope=certificate_sign(body),
            key_id=body["signing_key_id"],
            digest=certificate_digest(body),
            issued_at=now,
        )
        request.status = Status.COMPLETED
        request.completed_at = now
        request.error = ""
        request.save(update_fields=["status", "completed_at", "error", "updated_at"])
        for model_id, group, ids in marked:  # row updates first, then the audit appends
            _destroyed_event(model_id, group, ids, actor=WORKER, reason=f"erasure {request.pk}")
        erasure_event_create(
            request=request,
            actor=WORKER,
            action="completed",
            data={"certificate_id": certificate.certificate_id},
        )
        audit_event_append(
            actor=WORKER,
            action="erasure.completed",
            obj=request,
            payload={
                "certificate_id": certificate.certificate_id,
                "certificate_digest": certificate.digest,
                "key_id": certificate.key_id,
            },
        )
        erasure_request_notify(request, "completed", certificate=certificate)
        lineage_erasure_event(request=request, state="COMPLETE")
        # Signed with the certificate, so a trail cut below this issuance is named.
        audit_checkpoint_create(
            reason=AuditCheckpoint.Reason.CERTIFICATE, key_id=body["signing_key_id"]
        )
    return request


@dataclass(frozen=True)
class _Purged:
    """A stage phase 1 deactivated, as its details recorded it (for the audit payload)."""

    pk: int
    prefix: str
    tensor_digest: str


def _purged_mark(
    request: ErasureRequest, *, now: datetime
) -> list[tuple[int, list[_Purged], list[int]]]:
    """Mark destroyed the stages the purge just deleted the bytes of (still ``deactivated``):
    one statement per model; per model the stages and the ids marked, for the audit event
    the caller appends after its row updates."""
    marked = []
    for entry in request.execution.get("models", []):
        group = [_Purged(d["id"], d["prefix"], d["tensor_digest"]) for d in entry["stage_details"]]
        if group:
            marked.append((entry["model_id"], group, _destroyed_rows(group, now=now)))
    return marked


# --- sweepers ----------------------------------------------------------------------------


def erasure_requests_stuck(*, older_than: timedelta) -> list[int]:
    """Sweeper: queue again requests left in approved or executing (lost message, crash)."""
    cutoff = timezone.now() - older_than
    ids = list(
        ErasureRequest.objects.filter(
            status__in=(Status.APPROVED, Status.EXECUTING), updated_at__lte=cutoff
        ).values_list("pk", flat=True)
    )
    for request_id in ids:
        transaction.on_commit(lambda request_id=request_id: erasure_request_enqueue(request_id))  # type: ignore[misc]
    return ids


def stages_purge_orphans() -> list[int]:
    """Sweeper: destroy any deactivated stage left with bytes (a crash between phases, or a
    worker that wrote a stage whose lineage was erased while it trained)."""
    ids = list(
        Stage.objects.filter(state=Stage.State.DEACTIVATED).values_list("pk", flat=True)[
            :ORPHAN_BATCH
        ]
    )
    return stages_destroy(stage_ids=ids, actor="sweeper", reason="orphan purge")
