"""Sending webhook deliveries: one attempt at a time, retried with backoff, at most one
success per (event, subscription).

``webhook_delivery_attempt`` claims the delivery row with a conditional UPDATE (only a
pending or failed row whose attempt is due and that no live worker holds), so two workers
given the same delivery, or a retry racing a redeliver, never both send it. A failed
attempt schedules the next one with exponential backoff and jitter; ``RETRY_WINDOW``
after the event it gives up. A subscription whose attempts all failed for
``LETHE_WEBHOOK_DISABLE_AFTER_S`` is disabled, with the reason its owner sees. The beat
sweeper ``webhook_deliveries_due`` queues what is due (retries, and messages a broker
outage lost). Attempts are telemetry, not audited; disabling a subscription is.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from governance.models import WebhookDelivery, WebhookSubscription
from governance.services.audit import audit_event_append
from governance.services.webhook_http import (
    Answer,
    WebhookUrlError,
    webhook_post,
    webhook_url_resolve,
)
from governance.services.webhooks import deliveries_enqueue_on_commit

Status = WebhookDelivery.Status
RETRY_WINDOW = timedelta(hours=24)
BACKOFF_FIRST_S = 10
BACKOFF_MAX_S = 3600
# A message queued but not yet taken is left alone this long before the sweeper re-queues.
PENDING_GRACE = timedelta(minutes=2)
SWEEP_BATCH = 1000


def _claim_length() -> timedelta:
    """How long a worker holds a delivery: longer than one attempt can take."""
    return timedelta(seconds=4 * int(settings.LETHE_WEBHOOK_TIMEOUT_S) + 30)


def backoff(attempts: int, *, rand: Callable[[], float] = random.random) -> timedelta:
    """The wait after the ``attempts``-th failure: 10 s doubling to an hour, jittered to
    between half and all of it (receivers that failed together are not retried together)."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1))
    return timedelta(seconds=ceiling * (0.5 + 0.5 * rand()))


def signature_headers(
    subscription: WebhookSubscription, event_id: str, body: str, *, now: datetime
) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation's grace both secrets sign (two
    space-separated signatures, as the specification allows)."""
    secrets_in_force = [subscription.secret]
    grace = subscription.previous_secret_valid_until
    if subscription.previous_secret and grace is not None and grace > now:
        secrets_in_force.append(subscription.previous_secret)
    signatures = [Webhook(s).sign(event_id, now, body) for s in secrets_in_force]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def webhook_delivery_attempt(*, delivery_id: int) -> str | None:
    """Attempt one delivery if it is due and nobody else holds it. Returns its new status,
    or None when there was nothing to do (already delivered, not due, or claimed)."""
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status__in=WebhookDelivery.RETRYABLE)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + _claim_length())
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("event", "subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    if not subscription.active:
        reason = subscription.disabled_reason or "subscription inactive"
        _record(delivery, Answer(status=None, latency_ms=0, error=reason), final=True)
        return Status.GAVE_UP
    answer = _send(delivery, subscription)
    status = _record(delivery, answer)
    _subscription_health(subscription, answer)
    return status


def _send(delivery: WebhookDelivery, subscription: WebhookSubscription) -> Answer:
    """Check the URL again (DNS may have changed since it was saved) and POST once."""
    try:
        target = webhook_url_resolve(subscription.url)
    except WebhookUrlError as exc:
        return Answer(status=None, latency_ms=0, error=exc.message)
    body = json.dumps(delivery.event.payload, separators=(",", ":"), ensure_ascii=False)
    headers = signature_headers(subscription, delivery.event.event_id, body, now=timezone.now())
    timeout = float(settings.LETHE_WEBHOOK_TIMEOUT_S)
    return webhook_post(target, body.encode(), headers, timeout)


def _record(delivery: WebhookDelivery, answer: Answer, *, final: bool = False) -> str:
    """Write the attempt's outcome on the row this worker claimed."""
    now = timezone.now()
    attempts = delivery.attempts + (0 if final else 1)
    if answer.ok:
        status, next_at = Status.SUCCEEDED, None
    elif final or now - delivery.event.created_at >= RETRY_WINDOW:
        status, next_at = Status.GAVE_UP, None
    else:
        status, next_at = Status.FAILED, now + backoff(attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk, status__in=WebhookDelivery.RETRYABLE).update(
        status=status,
        attempts=F("attempts") + (0 if final else 1),
        response_code=answer.status,
        latency_ms=answer.latency_ms if not final else None,
        last_error=answer.error,
        next_attempt_at=next_at,
        claimed_until=None,
        delivered_at=now if answer.ok else None,
    )
    return status


def _subscription_health(subscription: WebhookSubscription, answer: Answer) -> None:
    """A success clears the failure clock; failing past the limit disables (audited)."""
    now = timezone.now()
    subs = WebhookSubscription.objects.filter(pk=subscription.pk)
    if answer.ok:
        subs.exclude(failing_since=None).update(failing_since=None)
        return
    subs.filter(failing_since=None).update(failing_since=now)
    limit = timedelta(seconds=int(settings.LETHE_WEBHOOK_DISABLE_AFTER_S))
    with transaction.atomic():
        current = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        if not current.active or current.failing_since is None:
            return
        if now - current.failing_since < limit:
            return
        current.active = False
        current.disabled_reason = (
            f"Disabled at {now:%Y-%m-%d %H:%M} UTC: every delivery failed since "
            f"{current.failing_since:%Y-%m-%d %H:%M} UTC; last error: {answer.error}"
        )[:2000]
        current.save(update_fields=["active", "disabled_reason", "updated_at"])
        audit_event_append(
            actor="worker",
            action="webhook.disabled",
            obj=current,
            payload={"reason": current.disabled_reason},
        )


# --- sweepers ----------------------------------------------------------------------------


def webhook_deliveries_due(*, now: datetime | None = None) -> list[int]:
    """Beat: queue deliveries whose retry is due, and pending ones whose message a broker
    outage or a crash lost (older than ``PENDING_GRACE``); a duplicate finds the row
    claimed or done and does nothing."""
    now = now or timezone.now()
    due = (
        WebhookDelivery.objects.filter(
            Q(status=Status.FAILED, next_attempt_at__lte=now)
            | Q(status=Status.PENDING, next_attempt_at__lte=now - PENDING_GRACE)
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    ids = list(due)
    with transaction.atomic():
        deliveries_enqueue_on_commit(ids)
    return ids
