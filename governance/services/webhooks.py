"""Webhook subscriptions and the events they receive (docs/webhooks.md).

``webhook_event_emit`` is the one way an event is made: called inside the transaction of
the state change it reports, it stores the event and one delivery per subscription that
asked for its type, and queues their delivery when that transaction commits (a rolled-back
change sends nothing). Delivery itself is in ``services.webhook_delivery``; what a URL may
be, in ``services.webhook_http``. Subscription changes are audited like every other.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from governance.errors import ApplicationError
from governance.models import (
    DeletionCertificate,
    ErasureConfirmation,
    ErasureRequest,
    Record,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from governance.models.webhooks import SECRET_PREFIX
from governance.services.audit import actor_name, audit_event_append
from governance.services.webhook_http import webhook_url_resolve

log = logging.getLogger(__name__)
API = "/api/v1"
# After a rotation the old secret keeps signing (a second signature) for this long.
SECRET_GRACE = timedelta(hours=24)
ERASURE_EVENTS = (
    "erasure_request.received",
    "erasure_request.approved",
    "erasure_request.rejected",
    "erasure_request.completed",
    "erasure_request.failed",
    "erasure_request.overdue",
    "erasure_request.confirmation_pending",
)
MODEL_EVENTS = ("model.trained", "model.serving_changed", "model.retrained")
TEST_EVENT = "webhook.test"
EVENT_TYPES = (*ERASURE_EVENTS, *MODEL_EVENTS, TEST_EVENT)
COMPLETED = "erasure_request.completed"


def secret_new() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` and 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def event_types_clean(event_types: Sequence[str]) -> list[str]:
    """The types a subscription asks for, known ones only, in order; ``["*"]`` for all."""
    if not event_types:
        raise _invalid("event_types", "name at least one event type, or *")
    unknown = [t for t in event_types if t != "*" and t not in EVENT_TYPES]
    if unknown:
        raise _invalid("event_types", f"unknown event type {unknown[0]!r}")
    return ["*"] if "*" in event_types else list(dict.fromkeys(event_types))


def _invalid(field: str, problem: str) -> ApplicationError:
    return ApplicationError(f"{field}: {problem}", details={field: [problem]})


# --- subscriptions -----------------------------------------------------------------------


def webhook_create(
    *,
    actor: Any,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    active: bool = True,
    requires_confirmation: bool = False,
) -> WebhookSubscription:
    """A subscription owned by ``actor``; its URL checked (SSRF) before anything is stored."""
    webhook_url_resolve(url)
    types = event_types_clean(event_types)
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            owner=actor,
            url=url,
            event_types=types,
            description=description,
            active=active,
            requires_confirmation=requires_confirmation,
            secret=secret_new(),
        )
        audit_event_append(
            actor=actor, action="webhook.created", obj=subscription, payload=_audited(subscription)
        )
    return subscription


def _audited(subscription: WebhookSubscription) -> dict[str, Any]:
    """What the trail keeps of a subscription: never its secret."""
    return {
        "url": subscription.url,
        "event_types": subscription.event_types,
        "active": subscription.active,
        "requires_confirmation": subscription.requires_confirmation,
        "owner": subscription.owner.get_username(),
    }


def webhook_update(
    *, actor: Any, subscription: WebhookSubscription, changes: dict[str, Any]
) -> WebhookSubscription:
    """Change ``url``, ``event_types``, ``description``, ``active`` or
    ``requires_confirmation``; re-activating a disabled subscription clears why it was."""
    if "url" in changes:
        webhook_url_resolve(changes["url"])
    if "event_types" in changes:
        changes = {**changes, "event_types": event_types_clean(changes["event_types"])}
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        for name, value in changes.items():
            setattr(subscription, name, value)
        if changes.get("active") is True:
            subscription.disabled_reason = ""
            subscription.failing_since = None
        subscription.save()
        audit_event_append(
            actor=actor,
            action="webhook.updated",
            obj=subscription,
            payload={**_audited(subscription), "changed": sorted(changes)},
        )
    return subscription


def webhook_delete(*, actor: Any, subscription: WebhookSubscription) -> None:
    """Delete a subscription and its delivery log; its confirmations stay with the requests."""
    with transaction.atomic():
        payload = _audited(subscription)
        audit_event_append(
            actor=actor,
            action="webhook.deleted",
            object_type="webhooksubscription",
            object_id=str(subscription.pk),
            payload=payload,
        )
        subscription.delete()


def webhook_secret_rotate(*, actor: Any, subscription: WebhookSubscription) -> WebhookSubscription:
    """A new secret; the old one also signs for ``SECRET_GRACE`` (receivers switch over)."""
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        subscription.previous_secret = subscription.secret
        subscription.previous_secret_valid_until = timezone.now() + SECRET_GRACE
        subscription.secret = secret_new()
        subscription.save()
        audit_event_append(
            actor=actor,
            action="webhook.secret_rotated",
            obj=subscription,
            payload={"previous_valid_until": subscription.previous_secret_valid_until},
        )
    return subscription


def webhook_test_send(*, actor: Any, subscription: WebhookSubscription) -> WebhookEvent:
    """Send ``webhook.test`` to this subscription only (whatever types it asked for)."""
    with transaction.atomic():
        event = webhook_event_emit(
            type=TEST_EVENT,
            data={"subscription_id": subscription.pk, "requested_by": actor_name(actor)},
            subscriptions=[subscription],
        )
        audit_event_append(
            actor=actor,
            action="webhook.tested",
            obj=subscription,
            payload={"event": event.event_id},
        )
    return event


def webhook_redeliver(*, actor: Any, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, whatever its state; still one delivery row."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.claimed_until = None
        delivery.save()
        audit_event_append(
            actor=actor,
            action="webhook.redelivered",
            object_type="webhooksubscription",
            object_id=str(delivery.subscription_id),
            payload={"delivery": delivery.pk, "event": delivery.event.event_id},
        )
        deliveries_enqueue_on_commit([delivery.pk])
    return delivery


# --- events ------------------------------------------------------------------------------


def webhook_event_emit(
    *,
    type: str,
    data: dict[str, Any],
    subscriptions: Iterable[WebhookSubscription] | None = None,
    dedupe_key: str | None = None,
) -> WebhookEvent:
    """Store an event and its deliveries in the caller's transaction; queue them on commit.

    ``subscriptions`` narrows the recipients (a test, a reminder); by default every active
    subscription that asked for ``type`` gets it. With ``dedupe_key`` an event already
    emitted under that key is returned instead of a second one.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("webhook events are emitted inside the state change's transaction")
    if dedupe_key is not None:
        existing = WebhookEvent.objects.filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing
    now = timezone.now()
    envelope = {
        "type": type,
        "timestamp": now.isoformat(),
        "data": json.loads(json.dumps(data, default=str)),
    }
    event = WebhookEvent.objects.create(
        event_id=f"msg_{uuid.uuid4().hex}",
        type=type,
        payload=envelope,
        dedupe_key=dedupe_key,
        created_at=now,
    )
    active = WebhookSubscription.objects.filter(active=True).select_related("owner")
    pool = active if subscriptions is None else subscriptions
    recipients = [s for s in pool if s.active and (subscriptions is not None or s.receives(type))]
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, subscription=s, created_at=now, next_attempt_at=now)
        for s in recipients
    )
    if type == COMPLETED:
        _confirmations_open(event, recipients, data)
    ids = [d.pk for d in deliveries if d.pk is not None]
    if len(ids) < len(deliveries):  # a database that returns no ids from a bulk insert
        ids = list(WebhookDelivery.objects.filter(event=event).values_list("pk", flat=True))
    deliveries_enqueue_on_commit(ids)
    return event


def _confirmations_open(
    event: WebhookEvent, recipients: Sequence[WebhookSubscription], data: dict[str, Any]
) -> None:
    """A pending confirmation per recipient that must confirm the completed erasure."""
    ErasureConfirmation.objects.bulk_create(
        [
            ErasureConfirmation(
                request_id=data["request_id"],
                subscription=s,
                owner_id=s.owner_id,
                recipient=f"{s.owner.get_username()} ({s.url})"[:300],
                created_at=event.created_at,
            )
            for s in recipients
            if s.requires_confirmation
        ],
        ignore_conflicts=True,
    )


def deliveries_enqueue_on_commit(delivery_ids: Sequence[int]) -> None:
    """Queue each delivery on the ``webhooks`` queue once the transaction commits."""
    if delivery_ids:
        ids = list(delivery_ids)
        transaction.on_commit(lambda: deliveries_enqueue(ids))


def deliveries_enqueue(delivery_ids: Sequence[int]) -> int:
    """Send the delivery tasks; a broker that is down is logged, and the sweeper
    (``webhook_deliveries_due``) queues them later. Returns how many were queued."""
    from celery_worker.tasks import deliver_webhook

    sent = 0
    for delivery_id in delivery_ids:
        try:
            deliver_webhook.delay(delivery_id)
        except (KombuError, OSError) as exc:
            log.warning(
                "webhook delivery %s: broker unreachable, left to the sweeper: %s", delivery_id, exc
            )
            break
        sent += 1
    return sent


# --- what erasure and model events say ----------------------------------------------------


def erasure_request_notify(
    request: ErasureRequest,
    kind: str,
    *,
    certificate: DeletionCertificate | None = None,
    **extra: Any,
) -> WebhookEvent:
    """Emit ``erasure_request.<kind>`` for ``request`` (inside its state change).

    ``certificate``: for ``completed``, the certificate just issued when the caller holds
    it (otherwise it is read)."""
    data: dict[str, Any] = {
        "request_id": request.pk,
        "subject_id": request.subject_ref,
        "status": request.status,
        "received_at": request.received_at,
        "deadline": request.deadline,
        "url": f"{API}/erasure-requests/{request.pk}/",
        **extra,
    }
    if kind == "completed":
        data |= _completed_data(request, certificate)
    dedupe = f"erasure_request.overdue:{request.pk}" if kind == "overdue" else None
    return webhook_event_emit(type=f"erasure_request.{kind}", data=data, dedupe_key=dedupe)


def _completed_data(
    request: ErasureRequest, certificate: DeletionCertificate | None
) -> dict[str, Any]:
    """Certificate, the erased records' external ids per dataset, the models affected."""
    if certificate is None:
        certificate = DeletionCertificate.objects.get(request=request)
    execution = request.execution or {}
    erased = (
        Record.objects.filter(
            subject__external_ref=request.subject_ref,
            status=Record.Status.ERASED,
            external_id__in=execution.get("records_erased", []),
        )
        .order_by("dataset_id", "external_id")
        .values_list("dataset_id", "dataset__name", "external_id")
    )
    by_dataset: dict[int, dict[str, Any]] = {}
    for dataset_id, name, external_id in erased:
        entry = by_dataset.setdefault(
            dataset_id, {"dataset_id": dataset_id, "dataset": name, "external_ids": []}
        )
        entry["external_ids"].append(external_id)
    return {
        "completed_at": request.completed_at,
        "certificate": {
            "id": certificate.certificate_id,
            "url": f"{API}/erasure-requests/{request.pk}/certificate/",
        },
        "records_erased": list(by_dataset.values()),
        "models_affected": [
            {
                "model_id": m["model_id"],
                "stages_deactivated": len(m.get("stages", [])),
                "manifest_version_after": (m.get("manifest_after") or {}).get("version"),
            }
            for m in execution.get("models", [])
        ],
        "confirmations_url": f"{API}/erasure-requests/{request.pk}/confirmations/",
    }


def model_notify(event_type: str, model_id: int, **data: Any) -> WebhookEvent:
    """Emit a ``model.*`` event (inside the state change that trained or served it)."""
    return webhook_event_emit(
        type=event_type, data={"model_id": model_id, "url": f"{API}/models/{model_id}/", **data}
    )
