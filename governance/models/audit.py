"""API tokens and the append-only, hash-chained audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """An API token, stored as a SHA-256 hash; the key is shown once at creation.

    A token stops working when it expires (``expires_at``, optional) or is revoked
    (``revoked_at``); both are kept rather than deleting the row, so the trail's
    ``api_token.*`` events keep pointing at a token someone can still look up.
    """

    class State(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        REVOKED = "revoked"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell keys apart.")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="None: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["prefix"], name="api_token_prefix")]

    def __str__(self) -> str:
        return f"token {self.prefix}… of user {self.user_id}"

    def state(self, now: datetime) -> ApiToken.State:
        """Revoked wins over expired; the one rule authentication and listings apply."""
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.ACTIVE


class AuditEvent(models.Model):
    """Append-only, hash-chained trail: each hash covers the canonical event and the last hash.

    ``hash`` is plain SHA-256, so anyone can re-derive the chain (certificates cite it);
    ``mac`` is HMAC-SHA256 over ``hash`` with the server's audit key
    (``governance.audit_key``), so only a holder of the key can append or re-hash events.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    mac = models.CharField(max_length=64, default="")

    class Meta:
        ordering: ClassVar = ["seq"]
        indexes: ClassVar = [
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["action", "created_at"], name="audit_action_time"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"


class AuditCheckpoint(models.Model):
    """A signed statement "the trail's head was event #seq with this hash, at this time".

    Written at every certificate and on a schedule; ``verify_audit_chain`` checks the trail
    against each one, so deleting or rewriting events a checkpoint covers is named. The
    signature is Ed25519 over the checkpoint's canonical body, with the certificate key.
    """

    class Reason(models.TextChoices):
        CERTIFICATE = "certificate"
        SCHEDULED = "scheduled"
        MANUAL = "manual"

    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=100)

    class Meta:
        ordering: ClassVar = ["seq", "pk"]
        indexes: ClassVar = [models.Index(fields=["seq"], name="audit_checkpoint_seq")]

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"
