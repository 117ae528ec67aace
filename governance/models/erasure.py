"""Erasure requests, their history and their certificates; the deadline rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce

from governance.models.datasets import Subject


class ErasureRequestQuerySet(models.QuerySet["ErasureRequest"]):
    """The deadline rules as SQL, the twins of ``ErasureRequest.deadline`` and ``is_overdue``."""

    def open(self) -> ErasureRequestQuerySet:
        return self.exclude(status__in=ErasureRequest.CLOSED)

    def with_deadline(self) -> ErasureRequestQuerySet:
        """Annotate ``deadline_at``: the extended deadline when there is one, else ``due_at``."""
        return self.annotate(deadline_at=Coalesce("extended_due_at", "due_at"))

    def overdue(self, now: datetime) -> ErasureRequestQuerySet:
        """Requests past the deadline in force that are open, or completed with a
        recipient's confirmation outstanding (Art. 19): the one meaning of "overdue"."""
        from governance.models.webhooks import ErasureConfirmation

        outstanding = ErasureConfirmation.objects.filter(
            status__in=ErasureConfirmation.OUTSTANDING
        ).values("request_id")
        unanswered = ~Q(status__in=ErasureRequest.CLOSED) | Q(
            status=ErasureRequest.Status.COMPLETED, pk__in=outstanding
        )
        return self.with_deadline().filter(unanswered, deadline_at__lt=now)  # type: ignore[misc]

    def not_overdue(self, now: datetime) -> ErasureRequestQuerySet:
        return self.exclude(pk__in=self.overdue(now).values("pk"))


class ErasureRequest(models.Model):
    """A data subject's request to erase their data (GDPR Art. 17), from intake to proof.

    ``subject_ref`` is kept as filed: a request for a subject Lethe has never seen is
    accepted and completes with a certificate saying no records were found.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXECUTING = "executing"
        COMPLETED = "completed"
        FAILED = "failed"

    class Channel(models.TextChoices):
        API = "api"
        WEB = "web"
        EMAIL = "email"
        LETTER = "letter"
        PHONE = "phone"
        OTHER = "other"

    # A closed request takes no more decisions and can no longer be overdue.
    CLOSED: ClassVar = (Status.COMPLETED, Status.REJECTED)
    # Not a column: set when an approval or retry commits, whether the broker took the
    # execution message (False: the broker was down; a worker queues it when it reconnects).
    execution_queued: bool | None = None

    subject_ref = models.CharField(max_length=200)
    subject = models.ForeignKey(
        Subject, null=True, blank=True, on_delete=models.PROTECT, related_name="erasure_requests"
    )
    reason = models.TextField(blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.API)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    received_at = models.DateTimeField()
    due_at = models.DateTimeField(help_text="Received + one month (GDPR Art. 12(3)).")
    extended_due_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # NULL, not "", means "no key": the unique constraint below applies to keyed rows only.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    fingerprint = models.CharField(max_length=64, blank=True, help_text="Hash of the filed body.")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    decided_note = models.TextField(blank=True, help_text="Approval note or rejection reason.")
    impact = models.JSONField(default=dict, blank=True, help_text="Impact preview (latest).")
    impact_stamp = models.JSONField(
        default=dict, blank=True, help_text="What the impact was computed from (impact_stamp)."
    )
    execution = models.JSONField(default=dict, blank=True, help_text="What execution did.")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ErasureRequestQuerySet.as_manager()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["filed_by", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="erasure_idempotency_key",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "updated_at"], name="erasure_status"),
            models.Index(fields=["received_at"], name="erasure_received"),
            models.Index(fields=["subject_ref"], name="erasure_subject_ref"),
        ]
        ordering: ClassVar = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"erasure request {self.pk} ({self.status})"

    @property
    def deadline(self) -> datetime:
        return self.extended_due_at or self.due_at

    @property
    def is_open(self) -> bool:
        return self.status not in self.CLOSED

    def is_overdue(self, now: datetime) -> bool:
        """Past the deadline in force and open, or completed with a recipient's confirmation
        outstanding (``ErasureRequestQuerySet.overdue`` in SQL)."""
        if self.deadline >= now:
            return False
        if self.is_open:
            return True
        return self.status == self.Status.COMPLETED and self.confirmations_outstanding()

    def confirmations_outstanding(self) -> bool:
        """Whether a recipient has still to confirm this erasure (pending, or failed)."""
        from governance.models.webhooks import ErasureConfirmation

        return self.confirmations.filter(status__in=ErasureConfirmation.OUTSTANDING).exists()

    # State-machine guards: the services enforce them, the views and API ask them.
    @property
    def can_approve(self) -> bool:
        return self.status == self.Status.RECEIVED

    def approval_refusal(self, user: Any) -> str | None:
        """Why ``user`` may not approve this request though it awaits a decision, or None.

        With ``LETHE_FOUR_EYES`` an officer may not approve a request they filed: a second
        person must agree before data is erased. Approvals by policy (no user) are the
        operator's own choice (``LETHE_AUTO_APPROVE_INTEGRATION``) and are not refused.
        """
        if not getattr(settings, "LETHE_FOUR_EYES", False):
            return None
        user_id = getattr(user, "pk", None)
        if user_id is not None and user_id == self.filed_by_id:
            return (
                f"four_eyes: you filed request {self.pk}, so another privacy officer must "
                "approve it (LETHE_FOUR_EYES is on)"
            )
        return None

    @property
    def can_reject(self) -> bool:
        return self.status == self.Status.RECEIVED

    @property
    def can_extend(self) -> bool:
        return self.is_open and self.extended_due_at is None

    @property
    def can_retry(self) -> bool:
        return self.status == self.Status.FAILED


class ErasureEvent(models.Model):
    """One step of a request's history: who did what, when (shown as its timeline)."""

    request = models.ForeignKey(ErasureRequest, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=50)
    status = models.CharField(max_length=10, help_text="Request status after this step.")
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar = ["at", "pk"]

    def __str__(self) -> str:
        return f"request {self.request_id}: {self.action}"


class DeletionCertificate(models.Model):
    """The signed proof of one completed erasure (DESIGN §6); the envelope is stored as issued."""

    request = models.OneToOneField(
        ErasureRequest, on_delete=models.PROTECT, related_name="certificate"
    )
    certificate_id = models.CharField(max_length=64, unique=True)
    envelope = models.JSONField(help_text='{"certificate": body, "signature": {...}}')
    key_id = models.CharField(max_length=64)
    digest = models.CharField(max_length=80, help_text="sha256 of the canonical body.")
    issued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"certificate {self.certificate_id}"


class SigningKey(models.Model):
    """A public key that has signed here: kept so its certificates verify after a rotation.

    Registered (idempotently, on ``key_id``) when a key first signs; never changed or
    removed. ``key_id`` is derived from the key itself, so a row whose PEM was swapped
    names a key id that no longer matches and verifies nothing.
    """

    key_id = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=16)
    public_key_pem = models.TextField(help_text="SubjectPublicKeyInfo, PEM.")
    first_used_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["first_used_at", "pk"]

    def __str__(self) -> str:
        return f"signing key {self.key_id}"
