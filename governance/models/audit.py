"""API tokens and the append-only, hash-chained audit trail."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """An API token, stored as a SHA-256 hash; the key is shown once at creation."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell keys apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token {self.prefix}… of user {self.user_id}"


class AuditEvent(models.Model):
    """Append-only, hash-chained trail: each hash covers the canonical event and the last hash."""

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering: ClassVar = ["seq"]
        indexes: ClassVar = [
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["action", "created_at"], name="audit_action_time"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"
