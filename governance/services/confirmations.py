"""Downstream confirmations (GDPR Art. 19) and the erasure events a clock starts.

A recipient that must confirm (``requires_confirmation``) gets a pending
``ErasureConfirmation`` when the ``erasure_request.completed`` event is made for it
(``services.webhooks``); it answers ``erased``, ``not_held`` or ``failed`` through
``erasure_confirmation_record``. While any answer is outstanding the request is overdue
past its deadline (``ErasureRequest.is_overdue``), and the beat reminds the recipient
every ``LETHE_CONFIRMATION_REMINDER_S`` with ``erasure_request.confirmation_pending``.
``erasure_requests_overdue_notify`` emits ``erasure_request.overdue`` once per request
that the one overdue rule names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.errors import ApplicationError
from governance.models import ErasureConfirmation, ErasureRequest, WebhookEvent
from governance.services.audit import audit_event_append
from governance.services.erasure import erasure_event_create
from governance.services.webhooks import erasure_request_notify, webhook_event_emit

Status = ErasureConfirmation.Status
ANSWERS = (Status.ERASED, Status.NOT_HELD, Status.FAILED)
REMINDER = "erasure_request.confirmation_pending"
BATCH = 500


def erasure_confirmation_record(
    *, actor: Any, request: ErasureRequest, status: str, detail: str = ""
) -> list[ErasureConfirmation]:
    """The caller's answer for every confirmation it owes on ``request``.

    403 ``not_a_recipient`` when it owes none; 409 when each was already answered
    ``erased`` or ``not_held`` (final). ``failed`` may be followed by a later answer.
    """
    if status not in ANSWERS:
        raise ApplicationError(
            f"status: must be one of {', '.join(ANSWERS)}", details={"status": [status]}
        )
    with transaction.atomic():
        mine = list(
            ErasureConfirmation.objects.select_for_update()
            .filter(request=request, owner=actor)
            .order_by("pk")
        )
        if not mine:
            raise ApplicationError(
                "request: you were not asked to confirm this erasure",
                code="not_a_recipient",
                status=403,
            )
        open_ = [c for c in mine if c.is_outstanding]
        if not open_:
            raise ApplicationError(
                f"status: already confirmed as {mine[0].status}", code="conflict", status=409
            )
        now = timezone.now()
        for confirmation in open_:
            confirmation.status = status
            confirmation.detail = detail
            confirmation.confirmed_at = now
            confirmation.save(update_fields=["status", "detail", "confirmed_at"])
        request = ErasureRequest.objects.get(pk=request.pk)
        note = f"{open_[0].recipient}: {status}" + (f" ({detail})" if detail else "")
        erasure_event_create(request=request, actor=actor, action="confirmed", note=note[:2000])
        audit_event_append(
            actor=actor,
            action="erasure.confirmed",
            obj=request,
            payload={
                "status": status,
                "detail": detail[:500],
                "confirmations": [c.pk for c in open_],
            },
        )
    return mine


def erasure_confirmations_remind(*, now: datetime | None = None) -> list[int]:
    """Beat: remind each recipient whose confirmation is outstanding and was not reminded
    within ``LETHE_CONFIRMATION_REMINDER_S``. Returns the confirmations reminded."""
    now = now or timezone.now()
    every = timedelta(seconds=int(settings.LETHE_CONFIRMATION_REMINDER_S))
    due = list(
        ErasureConfirmation.objects.filter(
            status__in=ErasureConfirmation.OUTSTANDING,
            subscription__isnull=False,
            subscription__active=True,
        )
        .filter(
            Q(reminded_at__isnull=True, created_at__lte=now - every)
            | Q(reminded_at__lte=now - every)
        )
        .select_related("request", "subscription")
        .order_by("pk")[:BATCH]
    )
    for confirmation in due:
        with transaction.atomic():
            request = confirmation.request
            webhook_event_emit(
                type=REMINDER,
                data={
                    "request_id": request.pk,
                    "subject_id": request.subject_ref,
                    "status": confirmation.status,
                    "deadline": request.deadline,
                    "pending_since": confirmation.created_at,
                    "confirmations_url": f"/api/v1/erasure-requests/{request.pk}/confirmations/",
                },
                subscriptions=[confirmation.subscription] if confirmation.subscription else [],
            )
            ErasureConfirmation.objects.filter(pk=confirmation.pk).update(reminded_at=now)
    return [c.pk for c in due]


def erasure_requests_overdue_notify(*, now: datetime | None = None) -> list[int]:
    """Beat: ``erasure_request.overdue`` once for each request the overdue rule names."""
    now = now or timezone.now()
    told = WebhookEvent.objects.filter(dedupe_key__startswith="erasure_request.overdue:")
    keys = told.values_list("dedupe_key", flat=True)
    told_ids = {int(key.rsplit(":", 1)[1]) for key in keys if key}
    overdue = ErasureRequest.objects.overdue(now).exclude(pk__in=told_ids).order_by("pk")[:BATCH]
    done = []
    for request in overdue:
        with transaction.atomic():
            erasure_request_notify(
                request,
                "overdue",
                confirmations_outstanding=request.status == ErasureRequest.Status.COMPLETED,
            )
        done.append(request.pk)
    return done
