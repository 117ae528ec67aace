"""Webhook subscriptions, their events and deliveries; downstream erasure confirmations.

One ``WebhookEvent`` per thing that happened (its ``event_id`` is the Standard Webhooks
``webhook-id``), one ``WebhookDelivery`` per (event, subscription), unique together, so a
retried or redelivered event is still one delivery. ``ErasureConfirmation`` is a recipient's
answer to an erasure it was told about (GDPR Art. 19); a pending one keeps its request
overdue past the deadline (``ErasureRequest.is_overdue``).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from governance.models.erasure import ErasureRequest

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)


class WebhookSubscription(models.Model):
    """A URL that receives signed events; owned by the account that made it.

    ``secret`` signs every delivery; after a rotation ``previous_secret`` signs too (a
    second signature in the header) until ``previous_secret_valid_until``. Both are stored
    as given out: signing needs the key itself.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    url = models.CharField(max_length=2000)
    event_types = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    description = models.CharField(max_length=500, blank=True)
    active = models.BooleanField(default=True)
    requires_confirmation = models.BooleanField(
        default=False, help_text="Must confirm every completed erasure (GDPR Art. 19)."
    )
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last success."
    )
    disabled_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["pk"]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"

    def receives(self, event_type: str) -> bool:
        """Whether this subscription asked for ``event_type`` (``*``: everything)."""
        return "*" in self.event_types or event_type in self.event_types


class WebhookEvent(models.Model):
    """One event, as every subscriber receives it: ``payload`` is the signed envelope."""

    event_id = models.CharField(max_length=64, unique=True, help_text="The webhook-id header.")
    type = models.CharField(max_length=64)
    payload = models.JSONField(help_text='{"type", "timestamp", "data"}')
    # Events that must happen once per fact (a request becoming overdue) carry a key.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["-created_at", "-pk"]
        indexes: ClassVar = [models.Index(fields=["type", "created_at"], name="webhook_event_type")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class WebhookDelivery(models.Model):
    """One event sent to one subscription, with every attempt's outcome summed up."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # will be tried again at next_attempt_at
        GAVE_UP = "gave_up"

    # What a worker may still attempt (a manual redeliver makes any delivery pending again).
    RETRYABLE: ClassVar = (Status.PENDING, Status.FAILED)

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker's claim on the row while it sends: no second worker sends at the same time.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["event", "subscription"], name="webhook_delivery_once")
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class ErasureConfirmation(models.Model):
    """A recipient's answer to a completed erasure: erased, not held, or failed (Art. 19).

    Made ``pending`` for every subscription with ``requires_confirmation`` that the
    ``erasure_request.completed`` event went to. ``owner`` is kept apart from the
    subscription so the recipient can still answer after deleting it.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        ERASED = "erased"
        NOT_HELD = "not_held"
        FAILED = "failed"

    # Not done yet: a recipient whose own erasure failed has not erased either.
    OUTSTANDING: ClassVar = (Status.PENDING, Status.FAILED)

    request = models.ForeignKey(
        ErasureRequest, on_delete=models.CASCADE, related_name="confirmations"
    )
    subscription = models.ForeignKey(
        WebhookSubscription,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="confirmations",
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recipient = models.CharField(max_length=300, help_text="Owner and URL, as when sent.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["request", "subscription"], name="erasure_confirmation_once"
            )
        ]

    def __str__(self) -> str:
        return f"request {self.request_id}: {self.recipient} {self.status}"

    @property
    def is_outstanding(self) -> bool:
        return self.status in self.OUTSTANDING
