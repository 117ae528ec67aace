"""Erasure requests (flow 3): intake, impact preview, decision, execution, purge, proof.

Execution runs on the ``control`` queue in three idempotent phases, each of which a retry
may repeat after a crash anywhere:

1. **Deactivate** (one transaction, from ``approved`` to ``executing``): the subject's
   records are marked erased and their content wiped, every stage whose lineage holds one
   of them is deactivated, each affected model publishes its next manifest, and the audit
   events are appended. From this commit on no prediction can use those stages (I2).
2. **Purge**: the deactivated stages' bytes are deleted from artifact storage and this
   process's caches, and the stages are marked destroyed with their audit event (I3).
3. **Certify** (one transaction, to ``completed``): the certificate is built from the
   database, signed with Ed25519, stored and the request completed.

Concurrent erasures lock the affected models' rows (in primary-key order) before touching
records and stages, so erasures that share a shard run one after the other and the final
manifest is the one a sequential run would publish. Row updates come before audit appends
in every transaction, because appends take the chain's lock (see services/audit.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from governance import engine
from governance.auth import user_has_role
from governance.errors import ApplicationError
from governance.models import (
    AuditEvent,
    DeletionCertificate,
    ErasureEvent,
    ErasureRequest,
    Record,
    ServingManifest,
    Shard,
    SliceAssignment,
    Stage,
    Subject,
    UnlearningModel,
)
from governance.permissions import Role
from governance.selectors.manifests import manifest_latest
from governance.services.audit import actor_name, audit_event_append

# GDPR Art. 12(3): answer within one month, extendable once by two further months.
RESPONSE_PERIOD = relativedelta(months=1)
EXTENSION_PERIOD = relativedelta(months=2)
LIVE_STATES = (Stage.State.PENDING, Stage.State.TRAINING, Stage.State.TRAINED)
Status = ErasureRequest.Status


def _conflict(message: str, code: str = "conflict") -> ApplicationError:
    return ApplicationError(code=code, status=409, message=message)


def _event(
    request: ErasureRequest, *, actor: Any, action: str, note: str = "", data: Any = None
) -> ErasureEvent:
    return ErasureEvent.objects.create(
        request=request,
        at=timezone.now(),
        actor=actor_name(actor),
        action=action,
        status=request.status,
        note=note,
        data=data or {},
    )


def _fingerprint(subject_ref: str, reason: str, channel: str) -> str:
    body = {"subject_ref": subject_ref, "reason": reason, "channel": channel}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# --- intake ------------------------------------------------------------------------------


def erasure_request_create(
    *,
    actor: Any,
    subject_ref: str,
    reason: str = "",
    channel: str = ErasureRequest.Channel.API,
    idempotency_key: str | None = None,
    received_at: datetime | None = None,
) -> tuple[ErasureRequest, bool]:
    """File a request; durable when this returns (I6). Returns (request, created).

    With an idempotency key, a repeat by the same account returns the first request and
    files nothing; the same key with a different body is refused, since the client is
    confused about what it filed. ``received_at`` records when a request arrived by
    another channel (a letter logged a day later); it cannot be in the future.
    """
    user = actor if getattr(actor, "is_authenticated", False) else None
    fingerprint = _fingerprint(subject_ref, reason, channel)
    now = timezone.now()
    received = received_at or now
    if received > now + timedelta(minutes=5):
        raise ApplicationError(
            code="invalid",
            message="received_at: cannot be in the future",
            details={"received_at": ["in the future"]},
        )
    if idempotency_key is not None:
        existing = _replayed(user, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            request = ErasureRequest.objects.create(
                subject_ref=subject_ref,
                subject=Subject.objects.filter(external_ref=subject_ref).first(),
                reason=reason,
                channel=channel,
                received_at=received,
                due_at=received + RESPONSE_PERIOD,
                filed_by=user,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                impact=erasure_impact(subject_ref=subject_ref),
            )
            _event(request, actor=actor, action="received", note=reason)
            audit_event_append(
                actor=actor,
                action="erasure.received",
                obj=request,
                payload={
                    "subject_ref": subject_ref,
                    "channel": channel,
                    "due_at": request.due_at.isoformat(),
                    "records_found": request.impact["records_found"],
                },
            )
            if user is not None and _auto_approved(user):
                _approve(request, actor="policy:auto-approve-integration", note="")
    except IntegrityError:
        # Two requests with one key raced; the loser answers with the winner's request.
        if idempotency_key is None:
            raise
        existing = _replayed(user, idempotency_key, fingerprint)
        if existing is None:
            raise
        return existing, False
    return request, True


def _replayed(user: Any, key: str, fingerprint: str) -> ErasureRequest | None:
    existing = ErasureRequest.objects.filter(filed_by=user, idempotency_key=key).first()
    if existing is not None and existing.fingerprint != fingerprint:
        raise ApplicationError(
            code="idempotency_conflict",
            status=422,
            message="Idempotency-Key: already used for a request with a different body",
            details={"Idempotency-Key": ["reused with a different body"], "request": existing.pk},
        )
    return existing


def _auto_approved(user: Any) -> bool:
    return bool(getattr(settings, "LETHE_AUTO_APPROVE_INTEGRATION", False)) and user_has_role(
        user, Role.INTEGRATION
    )


# --- impact ------------------------------------------------------------------------------


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


def erasure_impact(*, subject_ref: str) -> dict[str, Any]:
    """What erasing the subject now would do, computed with the rule that publishes manifests.

    Per model: the shards and slices holding the subject's records, the stages that would
    be deactivated, every sequence whose usable depth would shrink, the serving depth per
    shard before and after, and whether a shard would fall below the retraining threshold.
    Records no model has trained on yet need no model action and are counted separately.
    """
    from governance.services.serving import manifest_entries

    records = list(
        Record.objects.filter(subject__external_ref=subject_ref).values_list(
            "pk", "external_id", "status", "dataset_id"
        )
    )
    active = {pk: ext for pk, ext, status, _ in records if status == Record.Status.ACTIVE}
    stages_by_model = _stages_reading(active)
    assigned = SliceAssignment.objects.filter(record_id__in=list(active)).select_related(
        "slice__shard"
    )
    cells: dict[int, set[tuple[int, int, int]]] = defaultdict(set)
    trained_records: set[int] = set()
    for a in assigned:
        cells[a.model_id].add((a.generation, a.slice.shard.index, a.slice.index))
        trained_records.add(a.record_id)
    models = []
    for model in UnlearningModel.objects.filter(pk__in=list(cells)).order_by("pk"):
        gone = [s.pk for s in stages_by_model.get(model.pk, [])]
        per_generation: list[dict[str, Any]] = []
        # The generation serving now and, while a retrain runs, the one being trained.
        serving = _manifest_generation(model)
        for generation in sorted(g for g in {model.generation, serving or 0} if g > 0):
            before = {e["shard"]: e for e in manifest_entries(model, generation=generation)}
            after = {
                e["shard"]: e
                for e in manifest_entries(model, generation=generation, assume_deactivated=gone)
            }
            shards = [
                {
                    "shard": index,
                    "depth_before": before[index]["depth"] if index in before else 0,
                    "depth_after": after[index]["depth"] if index in after else 0,
                    "sequence_before": before[index]["sequence"] if index in before else None,
                    "sequence_after": after[index]["sequence"] if index in after else None,
                    "slices": sorted(
                        s for g, sh, s in cells[model.pk] if g == generation and sh == index
                    ),
                }
                for index in sorted({sh for g, sh, _ in cells[model.pk] if g == generation})
            ]
            per_generation.append(
                {
                    "generation": generation,
                    "shards": shards,
                    "sequences_truncated": _truncated(model, generation, gone),
                }
            )
        # Retraining is judged on the generation that will serve: the serving one, else the
        # newest (a model whose first training has not finished).
        live = [g for g in per_generation if g["generation"] == serving] or per_generation[-1:]
        models.append(
            {
                "model_id": model.pk,
                "name": model.name,
                "stages_to_deactivate": len(gone),
                "generations": per_generation,
                "retraining_needed": any(
                    s["depth_after"] < model.retrain_threshold for g in live for s in g["shards"]
                ),
            }
        )
    return {
        "subject_ref": subject_ref,
        "records_found": len(active),
        "records_already_erased": len(records) - len(active),
        "records_not_yet_trained": len(set(active) - trained_records),
        "datasets": sorted({ds for _, _, _, ds in records}),
        "models": models,
        "computed_at": timezone.now().isoformat(),
    }


def _manifest_generation(model: UnlearningModel) -> int | None:
    manifest = manifest_latest(model)
    return manifest.generation if manifest else None


def _truncated(model: UnlearningModel, generation: int, gone: list[int]) -> list[dict[str, Any]]:
    """Sequences whose usable depth shrinks: (shard, sequence, order, depth before, after)."""
    gone_set = set(gone)
    out = []
    shards = Shard.objects.filter(model=model, generation=generation).order_by("index")
    for shard in shards:
        states = {s.prefix: (s.pk, s.state) for s in shard.stages.all()}
        for seq in shard.sequences.order_by("index"):
            before = after = 0
            for d in range(1, len(seq.order) + 1):
                pk, state = states.get(engine.prefix_text(seq.order[:d]), (None, None))
                if state != Stage.State.TRAINED:
                    break
                before = d
                if after == d - 1 and pk not in gone_set:
                    after = d
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


# --- decisions ---------------------------------------------------------------------------


def _locked(request: ErasureRequest) -> ErasureRequest:
    return ErasureRequest.objects.select_for_update().get(pk=request.pk)


def erasure_request_approve(
    *, actor: Any, request: ErasureRequest, note: str = ""
) -> ErasureRequest:
    """A privacy officer's approval: the impact is refreshed and execution queued."""
    with transaction.atomic():
        request = _locked(request)
        if request.status != Status.RECEIVED:
            raise _conflict(f"status: request {request.pk} is {request.status}, not received")
        _approve(request, actor=actor, note=note)
    return request


def _approve(request: ErasureRequest, *, actor: Any, note: str) -> None:
    request.status = Status.APPROVED
    request.approved_by = actor if getattr(actor, "is_authenticated", False) else None
    request.approved_at = timezone.now()
    request.decided_note = note
    request.impact = erasure_impact(subject_ref=request.subject_ref)
    request.save()
    _event(request, actor=actor, action="approved", note=note)
    audit_event_append(
        actor=actor,
        action="erasure.approved",
        obj=request,
        payload={"note": note, "records_found": request.impact["records_found"]},
    )
    request_id = request.pk
    transaction.on_commit(lambda: _enqueue(request_id))


def _enqueue(request_id: int) -> None:
    from celery_worker.tasks import execute_erasure as execute_erasure_task

    execute_erasure_task.delay(request_id)


def erasure_request_reject(*, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
    """Refuse a request (e.g. identity not verified, Art. 17(3) exemption); reason required."""
    if not reason.strip():
        raise ApplicationError(
            code="invalid", message="reason: required", details={"reason": ["required"]}
        )
    with transaction.atomic():
        request = _locked(request)
        if request.status != Status.RECEIVED:
            raise _conflict(f"status: request {request.pk} is {request.status}, not received")
        request.status = Status.REJECTED
        request.decided_note = reason
        request.completed_at = timezone.now()
        request.save()
        _event(request, actor=actor, action="rejected", note=reason)
        audit_event_append(
            actor=actor, action="erasure.rejected", obj=request, payload={"reason": reason}
        )
    return request


def erasure_request_extend(*, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
    """Extend the deadline once by two months (Art. 12(3)), with the reason recorded."""
    if not reason.strip():
        raise ApplicationError(
            code="invalid", message="reason: required", details={"reason": ["required"]}
        )
    with transaction.atomic():
        request = _locked(request)
        if not request.is_open:
            raise _conflict(f"status: request {request.pk} is {request.status}")
        if request.extended_due_at is not None:
            raise _conflict(f"extended_due_at: request {request.pk} was already extended")
        request.extended_due_at = request.due_at + EXTENSION_PERIOD
        request.extension_reason = reason
        request.save()
        _event(request, actor=actor, action="extended", note=reason)
        audit_event_append(
            actor=actor,
            action="erasure.extended",
            obj=request,
            payload={"reason": reason, "extended_due_at": request.extended_due_at.isoformat()},
        )
    return request


def erasure_request_retry(*, actor: Any, request: ErasureRequest) -> ErasureRequest:
    """Queue a failed request again; execution resumes from the phase it reached."""
    with transaction.atomic():
        request = _locked(request)
        if request.status != Status.FAILED:
            raise _conflict(f"status: request {request.pk} is {request.status}, not failed")
        request.status = Status.EXECUTING if request.execution else Status.APPROVED
        request.error = ""
        request.save()
        _event(request, actor=actor, action="retried")
        audit_event_append(actor=actor, action="erasure.retried", obj=request)
        request_id = request.pk
        transaction.on_commit(lambda: _enqueue(request_id))
    return request


def erasure_overdue(request: ErasureRequest, now: datetime | None = None) -> bool:
    return request.is_open and request.deadline < (now or timezone.now())


# --- execution (worker) ------------------------------------------------------------------


def erasure_request_execute(*, request_id: int) -> str:
    """Carry out an approved request; safe to run again at any point. Returns its status."""
    request = _deactivate(request_id)
    if request is None:
        return ErasureRequest.objects.get(pk=request_id).status
    _purge(request)
    return _certify(request).status


def _deactivate(request_id: int) -> ErasureRequest | None:
    """Phase 1: records, stages, manifests and audit in one transaction."""
    from governance.services.serving import manifest_refresh

    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().get(pk=request_id)
        if request.status == Status.EXECUTING:
            return request  # phase 1 committed before; resume with the purge
        if request.status != Status.APPROVED:
            return None
        now = timezone.now()
        # Lock the models first: concurrent erasures touching one model queue here.
        record_ids = list(
            Record.objects.filter(
                subject__external_ref=request.subject_ref, status=Record.Status.ACTIVE
            ).values_list("pk", flat=True)
        )
        model_ids = sorted(
            set(
                SliceAssignment.objects.filter(record_id__in=record_ids).values_list(
                    "model_id", flat=True
                )
            )
        )
        models = list(
            UnlearningModel.objects.select_for_update().filter(pk__in=model_ids).order_by("pk")
        )
        before = {m.pk: _manifest_ref(m) for m in models}
        records = list(
            Record.objects.select_for_update()
            .filter(pk__in=record_ids, status=Record.Status.ACTIVE)
            .order_by("pk")
        )
        erased_ids = [r.external_id for r in records]
        Record.objects.filter(pk__in=[r.pk for r in records]).update(
            status=Record.Status.ERASED, erased_at=now, text="", label=""
        )
        deactivated = _deactivate_stages(record_ids)
        models_done: list[dict[str, Any]] = []
        for model in models:
            stages = deactivated.get(model.pk, [])
            manifest_refresh(model=model, reason=f"erasure request {request.pk}", actor="worker")
            after = _manifest_ref(model)
            models_done.append(
                {
                    "model_id": model.pk,
                    "stages": [s["id"] for s in stages],
                    "stage_details": stages,
                    "manifest_before": before[model.pk],
                    "manifest_after": after,
                    "i2_check": _i2_check(model),
                }
            )
        failed = [m["model_id"] for m in models_done if m["i2_check"] != "passed"]
        if failed:
            raise RuntimeError(f"I2 violated after deactivation for models {failed}")
        request.status = Status.EXECUTING
        request.attempts += 1
        request.execution = {
            "executed_at": now.isoformat(),
            "records_erased": erased_ids,
            "models": models_done,
        }
        request.save()
        _event(
            request,
            actor="worker",
            action="deactivated",
            data={
                "records": len(erased_ids),
                "stages": sum(len(m["stages"]) for m in models_done),
            },
        )
        audit_event_append(
            actor="worker",
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
    return request


def _deactivate_stages(record_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Deactivate live stages reading any of the records; locked rows, re-checked state.

    A stage in training is deactivated too: its worker finds it no longer ``training``
    when it finishes, never records it as trained, and deletes what it wrote (I5).
    """
    candidate_ids = (
        Stage.objects.filter(slices__assignments__record_id__in=record_ids)
        .values_list("pk", flat=True)
        .distinct()
    )
    stages = list(
        Stage.objects.select_for_update()
        .filter(pk__in=list(candidate_ids), state__in=LIVE_STATES)
        .select_related("shard")
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


def _manifest_ref(model: UnlearningModel) -> dict[str, Any] | None:
    manifest = manifest_latest(model)
    if manifest is None:
        return None
    return {
        "version": manifest.version,
        "generation": manifest.generation,
        "digest": manifest.digest,
        "depths": {str(e["shard"]): e["depth"] for e in manifest.entries},
    }


def _i2_check(model: UnlearningModel) -> str:
    """I2 on the current manifest: no serving stage reads an erased record."""
    manifest = manifest_latest(model)
    if manifest is None:
        return "passed"
    ids = [s["id"] for e in manifest.entries for s in e["stages"]]
    dirty = (
        Stage.objects.filter(
            pk__in=ids, slices__assignments__record__status=Record.Status.ERASED
        ).exists()
        or Stage.objects.filter(pk__in=ids).exclude(state=Stage.State.TRAINED).exists()
    )
    return "failed" if dirty else "passed"


def _purge(request: ErasureRequest) -> None:
    """Phase 2: destroy the bytes of every stage phase 1 deactivated (idempotent)."""
    for entry in request.execution.get("models", []):
        stages_destroy(stage_ids=entry["stages"], actor="worker", reason=f"erasure {request.pk}")


def stages_destroy(*, stage_ids: Iterable[int], actor: Any, reason: str) -> list[int]:
    """Delete deactivated stages' bytes and mark them destroyed (I3). Returns ids destroyed.

    Bytes go first: a crash before the marking leaves a deactivated stage without a file,
    which the next attempt marks. Caches of this process are purged with them; serving
    processes drop theirs when they see the new manifest, before their next prediction.
    """
    from governance.services.serving import predictors

    stages = list(
        Stage.objects.filter(pk__in=list(stage_ids), state=Stage.State.DEACTIVATED)
        .select_related("shard__model")
        .order_by("pk")
    )
    if not stages:
        return []
    by_model: dict[int, list[Stage]] = defaultdict(list)
    for stage in stages:
        store = engine.artifact_store(stage.shard.model, stage.shard.generation)
        store.delete(engine.stage_key(stage))
        if stage.artifact_path:
            Path(stage.artifact_path).unlink(missing_ok=True)
        by_model[stage.shard.model_id].append(stage)
    for model_id in by_model:
        predictors.evict(model_id)
    now = timezone.now()
    destroyed: list[int] = []
    with transaction.atomic():
        for model_id, group in by_model.items():
            ids = list(
                Stage.objects.filter(
                    pk__in=[s.pk for s in group], state=Stage.State.DEACTIVATED
                ).values_list("pk", flat=True)
            )
            Stage.objects.filter(pk__in=ids).update(
                state=Stage.State.DESTROYED, destroyed_at=now, artifact_path=""
            )
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
            destroyed += ids
    return destroyed


def _certify(request: ErasureRequest) -> ErasureRequest:
    """Phase 3: build, sign and store the certificate; complete the request."""
    from governance.certificates import canonical_bytes, certificate_sign, key_id, signing_key

    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().get(pk=request.pk)
        if request.status != Status.EXECUTING:
            return request
        leftovers = _not_destroyed(request)
        if leftovers:
            raise RuntimeError(f"stages {leftovers} still hold bytes; not certifying")
        now = timezone.now()
        head = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
        body = _certificate_body(request, issued_at=now, head=head)
        body["signing_key_id"] = key_id(signing_key().public_key())
        envelope = certificate_sign(body)
        digest = "sha256:" + hashlib.sha256(canonical_bytes(body)).hexdigest()
        certificate = DeletionCertificate.objects.create(
            request=request,
            certificate_id=body["certificate_id"],
            envelope=envelope,
            key_id=body["signing_key_id"],
            digest=digest,
            issued_at=now,
        )
        request.status = Status.COMPLETED
        request.completed_at = now
        request.error = ""
        request.save()
        _event(
            request,
            actor="worker",
            action="completed",
            data={"certificate_id": certificate.certificate_id},
        )
        audit_event_append(
            actor="worker",
            action="erasure.completed",
            obj=request,
            payload={
                "certificate_id": certificate.certificate_id,
                "certificate_digest": digest,
                "key_id": certificate.key_id,
            },
        )
    return request


def _not_destroyed(request: ErasureRequest) -> list[int]:
    ids = [i for m in request.execution.get("models", []) for i in m["stages"]]
    return list(
        Stage.objects.filter(pk__in=ids)
        .exclude(state=Stage.State.DESTROYED)
        .values_list("pk", flat=True)
    )


def _certificate_body(request: ErasureRequest, *, issued_at: datetime, head: Any) -> dict[str, Any]:
    """DESIGN §6, from the database as it is now (integers and strings only)."""
    execution = request.execution
    stages = {
        s.pk: s
        for s in Stage.objects.filter(
            pk__in=[i for m in execution.get("models", []) for i in m["stages"]]
        )
    }
    names = dict(
        UnlearningModel.objects.filter(
            pk__in=[m["model_id"] for m in execution.get("models", [])]
        ).values_list("pk", "name")
    )
    models = []
    for m in execution.get("models", []):
        after = m["manifest_after"] or {}
        models.append(
            {
                "model_id": m["model_id"],
                "name": names.get(m["model_id"], ""),
                "stages_deactivated": [
                    {
                        "id": d["id"],
                        "generation": d["generation"],
                        "shard": d["shard"],
                        "prefix": d["prefix"],
                        "sequence": _sequences_of(stages[d["id"]]),
                        "position": d["position"],
                        "state_before": d["state_before"],
                        "tensor_digest": d["tensor_digest"],
                        "destroyed_at": _iso(stages[d["id"]].destroyed_at),
                    }
                    for d in m["stage_details"]
                ],
                "manifest_before": _manifest_claim(m["manifest_before"]),
                "manifest_after": _manifest_claim(after),
                "serving_depth_after": after.get("depths", {}),
                "i2_check": m["i2_check"],
            }
        )
    records = execution.get("records_erased", [])
    return {
        "type": "lethe.erasure-certificate/v1",
        "certificate_id": str(uuid.uuid4()),
        "request_id": request.pk,
        "subject_ref": request.subject_ref,
        "outcome": "erased" if records else "no_records_found",
        "records_found": len(records),
        "records_erased": records,
        "models": models,
        "received_at": _iso(request.received_at),
        "due_at": _iso(request.deadline),
        "approved_at": _iso(request.approved_at),
        "approved_by": request.approved_by.get_username() if request.approved_by else "policy",
        "executed_at": execution.get("executed_at", ""),
        "issued_at": _iso(issued_at),
        "audit_chain_head": {"seq": head.seq, "hash": head.hash} if head else None,
        "issuer": "Lethe",
    }


def _sequences_of(stage: Stage) -> list[int]:
    """Indices of the sequences whose prefix this stage is (shared prefixes: several)."""
    return [
        seq.index
        for seq in stage.shard.sequences.order_by("index")
        if engine.prefix_text(seq.order[: stage.position]) == stage.prefix
    ]


def _manifest_claim(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ref:
        return None
    return {"version": ref["version"], "generation": ref["generation"], "digest": ref["digest"]}


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def erasure_request_fail(*, request_id: int, error: str) -> None:
    """Record a request whose execution exhausted its retries (an officer may retry it)."""
    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().get(pk=request_id)
        if request.status not in (Status.APPROVED, Status.EXECUTING):
            return
        request.status = Status.FAILED
        request.error = error[:2000]
        request.save()
        _event(request, actor="worker", action="failed", note=error[:500])
        audit_event_append(
            actor="worker", action="erasure.failed", obj=request, payload={"error": error[:500]}
        )


def erasure_requests_stuck(*, older_than: timedelta) -> list[int]:
    """Sweeper: queue again requests left in approved or executing (lost message, crash)."""
    cutoff = timezone.now() - older_than
    ids = list(
        ErasureRequest.objects.filter(
            Q(status=Status.APPROVED) | Q(status=Status.EXECUTING), updated_at__lte=cutoff
        ).values_list("pk", flat=True)
    )
    for request_id in ids:
        transaction.on_commit(lambda request_id=request_id: _enqueue(request_id))  # type: ignore[misc]
    return ids


def stages_purge_orphans() -> list[int]:
    """Sweeper: destroy any deactivated stage left with bytes (a crash between phases, or a
    worker that wrote a stage whose lineage was erased while it trained)."""
    ids = list(
        Stage.objects.filter(state=Stage.State.DEACTIVATED).values_list("pk", flat=True)[:1000]
    )
    return stages_destroy(stage_ids=ids, actor="sweeper", reason="orphan purge")


# --- verification ------------------------------------------------------------------------


def certificate_claims_check(envelope: Any) -> list[dict[str, Any]]:
    """Re-check what a (signature-verified) certificate claims against the database now.

    Each check is ``{"claim", "ok", "detail"}``: the request exists and completed for that
    subject; the certificate is the one stored; every record listed is an erased tombstone
    with no content; every stage listed is destroyed (or retired) and has no bytes; the
    manifests named exist with those digests; the serving manifests hold no stage whose
    lineage has an erased record (I2, now); the audit chain holds the head it names.
    """
    body = envelope.get("certificate") if isinstance(envelope, dict) else None
    if not isinstance(body, dict):
        return [_claim("certificate", False, "no certificate body")]
    checks: list[dict[str, Any]] = []
    request = ErasureRequest.objects.filter(pk=_int(body.get("request_id"))).first()
    checks.append(
        _claim(
            "request",
            request is not None
            and request.subject_ref == body.get("subject_ref")
            and request.status == Status.COMPLETED,
            f"request {body.get('request_id')} for {body.get('subject_ref')!r}"
            + (f" is {request.status}" if request else " does not exist"),
        )
    )
    stored = DeletionCertificate.objects.filter(certificate_id=body.get("certificate_id")).first()
    checks.append(
        _claim(
            "issued",
            stored is not None and stored.envelope.get("certificate") == body,
            "matches the certificate stored at issue"
            if stored
            else "no certificate with this id was issued here",
        )
    )
    erased = list(body.get("records_erased") or [])
    rows = Record.objects.filter(
        subject__external_ref=body.get("subject_ref"), external_id__in=erased
    )
    clean = [r.external_id for r in rows if r.status == Record.Status.ERASED and not r.text]
    missing = sorted(set(erased) - set(clean))
    checks.append(
        _claim(
            "records_erased",
            not missing,
            f"{len(clean)} of {len(erased)} records are erased tombstones"
            + (f"; not erased: {missing[:10]}" if missing else ""),
        )
    )
    for model in body.get("models") or []:
        checks += _model_claims(model)
    head = body.get("audit_chain_head") or {}
    if head:
        event = AuditEvent.objects.filter(seq=_int(head.get("seq"))).first()
        checks.append(
            _claim(
                "audit_chain_head",
                event is not None and event.hash == head.get("hash"),
                f"event #{head.get('seq')} "
                + ("has the named hash" if event and event.hash == head.get("hash") else "differs"),
            )
        )
    return checks


def _model_claims(claim: dict[str, Any]) -> list[dict[str, Any]]:
    model = UnlearningModel.objects.filter(pk=_int(claim.get("model_id"))).first()
    name = f"model {claim.get('model_id')}"
    if model is None:
        return [_claim(name, False, "no such model")]
    listed = claim.get("stages_deactivated") or []
    stages = {
        s.pk: s
        for s in Stage.objects.filter(pk__in=[d.get("id") for d in listed]).select_related("shard")
    }
    alive = []
    for d in listed:
        stage = stages.get(d.get("id"))
        if stage is None or stage.state not in (Stage.State.DESTROYED, Stage.State.RETIRED):
            alive.append(d.get("id"))
            continue
        path = engine.artifact_store(model, stage.shard.generation).path(engine.stage_key(stage))
        if path.exists():
            alive.append(stage.pk)
    out = [
        _claim(
            f"{name} stages destroyed",
            not alive,
            f"{len(listed) - len(alive)} of {len(listed)} stages destroyed, no bytes left"
            + (f"; still present: {alive}" if alive else ""),
        )
    ]
    for which in ("manifest_before", "manifest_after"):
        ref = claim.get(which)
        if ref:
            ok = ServingManifest.objects.filter(
                model=model, version=ref.get("version"), digest=ref.get("digest")
            ).exists()
            out.append(_claim(f"{name} {which}", ok, f"version {ref.get('version')}"))
    out.append(_claim(f"{name} I2 now", _i2_check(model) == "passed", "serving lineage clean"))
    return out


def _claim(claim: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"claim": claim, "ok": bool(ok), "detail": detail}


def _int(value: Any) -> int:
    """A claimed id as an integer; anything else matches no row."""
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
