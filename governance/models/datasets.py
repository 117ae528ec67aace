"""Data subjects, datasets and their records (with tombstones once erased)."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q


class Subject(models.Model):
    """A data subject, known by the reference the data platform uses for them."""

    external_ref = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.external_ref


class Dataset(models.Model):
    """A named set of records with its label set.

    ``owner`` (the account that created it) and the ``DatasetGrant`` rows are what scope an
    integration account: it writes to and reads lineage of only those datasets
    (``governance.selectors.datasets``).
    """

    name = models.CharField(max_length=200, unique=True)
    labels = models.JSONField(help_text="Ordered class labels; a record's label is one of them.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="datasets_owned",
        help_text="The account that created it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class DatasetGrant(models.Model):
    """Access to a dataset for an account other than its owner, given by a privacy officer."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dataset_grants"
    )
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["dataset", "user"], name="dataset_grant_unique"),
        ]

    def __str__(self) -> str:
        return f"dataset {self.dataset_id} granted to user {self.user_id}"


class Record(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        ERASED = "erased"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="records")
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="records")
    external_id = models.CharField(max_length=200)
    # Content is wiped on erasure; the row stays as a tombstone (ids, status, time).
    text = models.TextField(blank=True)
    label = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="record_unique_id"),
            models.CheckConstraint(
                condition=Q(status="active", erased_at__isnull=True)
                | Q(status="erased", erased_at__isnull=False),
                name="record_erased_at_matches_status",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["subject", "dataset"], name="record_subject"),
            # Tombstones only: the I2 check ("does any serving stage read an erased record?")
            # starts from the few erased rows instead of scanning every record (1M: 117 ms).
            models.Index(fields=["id"], condition=Q(status="erased"), name="record_erased"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"
