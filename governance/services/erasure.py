"""Erasure requests (flow 3): intake and decisions; execution is in ``erasure_execution``.

A request is durable when ``erasure_request_create`` returns (I6). A privacy officer then
approves it (execution is queued when the approval commits), rejects it with a reason, or
extends its deadline once; a request whose execution failed may be retried. Each decision
asks the request's own guard (``ErasureRequest.can_approve`` and so on), so the pages, the
API and these services agree on what a request still accepts.

Every step adds an ``ErasureEvent`` (the request's timeline) and an audit event in the
transaction that makes it. Row updates come before audit appends in every transaction,
because appends take the chain's lock (see services/audit.py).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from governance.canonical import canonical_bytes
from governance.errors import ApplicationError
from governance.models import ErasureEvent, ErasureRequest, Subject
from governance.permissions import Role, user_roles
from governance.selectors.impact import (
    erasure_impact,
    impact_stamp,
    impact_unchanged,
)
from governance.services.audit import actor_name, audit_event_append, audit_head_seq
from governance.services.lineage_events import lineage_erasure_event
from governance.services.webhooks import erasure_request_notify

# GDPR Art. 12(3): answer within one month, extendable once by two further months.
RESPONSE_PERIOD = relativedelta(months=1)
EXTENSION_PERIOD = relativedelta(months=2)
# A received_at this far ahead of our clock is a client's clock skew, not the future.
CLOCK_SKEW = timedelta(minutes=5)
AUTO_APPROVER = "policy:auto-approve-integration"
log = logging.getLogger(__name__)
Status = ErasureRequest.Status


def erasure_event_create(
    *, request: ErasureRequest, actor: Any, action: str, note: str = "", data: Any = None
) -> ErasureEvent:
    """One step of the request's timeline, with the status it left the request in."""
    return ErasureEvent.objects.create(
        request=request,
        at=timezone.now(),
        actor=actor_name(actor),
        action=action,
        status=request.status,
        note=note,
        data=data or {},
    )


def erasure_request_enqueue(request_id: int) -> bool:
    """Queue the request's execution on the ``control`` queue (call it on commit).

    Returns False, and logs, when the broker cannot be reached: the request is already
    durable as approved, and a control worker queues it again as soon as it reconnects
    (``celery_worker.steps.ResumeOnConnect``), or the sweeper does. Raising here, after
    the commit, would turn a recorded approval into a 500.
    """
    from celery_worker.tasks import execute_erasure as execute_erasure_task

    try:
        execute_erasure_task.delay(request_id)
    except (KombuError, OSError) as exc:
        log.warning("erasure %s: execution pending, broker unreachable: %s", request_id, exc)
        return False
    return True


def _enqueue_on_commit(request: ErasureRequest) -> None:
    """After the commit, queue execution and note on ``request`` whether the broker took it."""

    def enqueue() -> None:
        request.execution_queued = erasure_request_enqueue(request.pk)

    transaction.on_commit(enqueue)


def _conflict(message: str, code: str = "conflict") -> ApplicationError:
    return ApplicationError(code=code, status=409, message=message)


def _fingerprint(subject_ref: str, reason: str, channel: str) -> str:
    """What a repeated Idempotency-Key must match: the canonical hash of the filed body."""
    body = {"subject_ref": subject_ref, "reason": reason, "channel": channel}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


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

    ``subject_ref`` comes in its comparable form: the API and the web form clean it with
    ``governance.subject_refs.subject_ref_clean`` (ids stored before that rule keep theirs).

    With an idempotency key, a repeat by the same account returns the first request and
    files nothing; the same key with a different body is refused, since the client is
    confused about what it filed. ``received_at`` records when a request arrived by
    another channel (a letter logged a day later); it cannot be in the future.
    """
    user = actor if getattr(actor, "is_authenticated", False) else None
    fingerprint = _fingerprint(subject_ref, reason, channel)
    received = _received(received_at)
    if idempotency_key is not None:
        existing = _replayed(user, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            request = _file(
                actor=actor,
                user=user,
                subject_ref=subject_ref,
                reason=reason,
                channel=channel,
                received=received,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
    except IntegrityError:
        # Two requests with one key raced; the loser answers with the winner's request.
        if idempotency_key is None:
            raise
        existing = _replayed(user, idempotency_key, fingerprint)
        if existing is None:
            raise
        return existing, False
    return request, True


def _received(received_at: datetime | None) -> datetime:
    now = timezone.now()
    received = received_at or now
    if received > now + CLOCK_SKEW:
        raise ApplicationError(
            code="invalid",
            message="received_at: cannot be in the future",
            details={"received_at": ["in the future"]},
        )
    return received


def _file(
    *,
    actor: Any,
    user: Any,
    subject_ref: str,
    reason: str,
    channel: str,
    received: datetime,
    idempotency_key: str | None,
    fingerprint: str,
) -> ErasureRequest:
    """The request row, its first event and audit event; auto-approved when policy says so."""
    audit_seq = audit_head_seq()  # before the impact: what its stamp is checked against
    impact = erasure_impact(subject_ref=subject_ref)
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
        impact=impact,
        impact_stamp=impact_stamp(impact, audit_seq=audit_seq),
    )
    erasure_event_create(request=request, actor=actor, action="received", note=reason)
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
    erasure_request_notify(request, "received")
    if user is not None and _auto_approved(user):
        _approve(request, actor=AUTO_APPROVER, note="")
    return request


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
    """``LETHE_AUTO_APPROVE_INTEGRATION``: integration accounts' requests need no officer."""
    enabled = bool(getattr(settings, "LETHE_AUTO_APPROVE_INTEGRATION", False))
    return enabled and Role.INTEGRATION in user_roles(user)


# --- decisions ---------------------------------------------------------------------------


def _locked(request: ErasureRequest) -> ErasureRequest:
    return ErasureRequest.objects.select_for_update().get(pk=request.pk)


def _reason_required(reason: str) -> None:
    if not reason.strip():
        raise ApplicationError(
            code="invalid", message="reason: required", details={"reason": ["required"]}
        )


def erasure_request_approve(
    *, actor: Any, request: ErasureRequest, note: str = ""
) -> ErasureRequest:
    """A privacy officer's approval: the impact is refreshed (unless its stamp shows nothing
    changed since it was computed) and execution queued."""
    with transaction.atomic():
        request = _locked(request)
        if not request.can_approve:
            raise _conflict(f"status: request {request.pk} is {request.status}, not received")
        refusal = request.approval_refusal(actor)
        if refusal is not None:
            raise ApplicationError(code="four_eyes", status=403, message=refusal)
        _approve(request, actor=actor, note=note)
    return request


def _approve(request: ErasureRequest, *, actor: Any, note: str) -> None:
    request.status = Status.APPROVED
    request.approved_by = actor if getattr(actor, "is_authenticated", False) else None
    request.approved_at = timezone.now()
    request.decided_note = note
    changed = ["status", "approved_by", "approved_at", "decided_note", "updated_at"]
    if not impact_unchanged(request.impact_stamp, request.impact, request_id=request.pk):
        # Something changed since the preview was computed: compute it again.
        audit_seq = audit_head_seq()
        request.impact = erasure_impact(subject_ref=request.subject_ref)
        request.impact_stamp = impact_stamp(request.impact, audit_seq=audit_seq)
        changed += ["impact", "impact_stamp"]
    request.save(update_fields=changed)
    erasure_event_create(request=request, actor=actor, action="approved", note=note)
    audit_event_append(
        actor=actor,
        action="erasure.approved",
        obj=request,
        payload={"note": note, "records_found": request.impact["records_found"]},
    )
    erasure_request_notify(request, "approved")
    _enqueue_on_commit(request)


def erasure_request_reject(*, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
    """Refuse a request (e.g. identity not verified, Art. 17(3) exemption); reason required."""
    _reason_required(reason)
    with transaction.atomic():
        request = _locked(request)
        if not request.can_reject:
            raise _conflict(f"status: request {request.pk} is {request.status}, not received")
        request.status = Status.REJECTED
        request.decided_note = reason
        request.completed_at = timezone.now()
        request.save()
        erasure_event_create(request=request, actor=actor, action="rejected", note=reason)
        audit_event_append(
            actor=actor, action="erasure.rejected", obj=request, payload={"reason": reason}
        )
        erasure_request_notify(request, "rejected", reason=reason)
    return request


def erasure_request_extend(*, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
    """Extend the deadline once by two months (Art. 12(3)), with the reason recorded."""
    _reason_required(reason)
    with transaction.atomic():
        request = _locked(request)
        if not request.can_extend:
            raise _conflict(
                f"status: request {request.pk} is {request.status}"
                if not request.is_open
                else f"extended_due_at: request {request.pk} was already extended"
            )
        request.extended_due_at = request.due_at + EXTENSION_PERIOD
        request.extension_reason = reason
        request.save()
        erasure_event_create(request=request, actor=actor, action="extended", note=reason)
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
        if not request.can_retry:
            raise _conflict(f"status: request {request.pk} is {request.status}, not failed")
        request.status = Status.EXECUTING if request.execution else Status.APPROVED
        request.error = ""
        request.save()
        erasure_event_create(request=request, actor=actor, action="retried")
        audit_event_append(actor=actor, action="erasure.retried", obj=request)
        _enqueue_on_commit(request)
    return request


def erasure_request_fail(*, request_id: int, error: str) -> None:
    """Record a request whose execution exhausted its retries (an officer may retry it)."""
    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().get(pk=request_id)
        if request.status not in (Status.APPROVED, Status.EXECUTING):
            return
        request.status = Status.FAILED
        request.error = error[:2000]
        request.save()
        erasure_event_create(request=request, actor="worker", action="failed", note=error[:500])
        audit_event_append(
            actor="worker", action="erasure.failed", obj=request, payload={"error": error[:500]}
        )
        erasure_request_notify(request, "failed", error=error[:500])
        lineage_erasure_event(request=request, state="FAIL")
