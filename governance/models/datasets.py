"""Data subjects, datasets and their records (with tombstones once erased)."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q


class Subject(models.Model):
    """A data subject, known by the reference the data platform uses for them."""

    external_ref = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # A constraint, not ``unique=True``: on PostgreSQL the field option adds a second
        # index for LIKE queries, which nothing runs and every new subject had to update.
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["external_ref"], name="subject_unique_ref")
        ]

    def __str__(self) -> str:
        return self.external_ref


class DatasetTask(models.TextChoices):
    """What a dataset's records hold (docs/tasks.md)."""

    CLASSIFICATION = "classification"
    GENERATION = "generation"
    IMAGE_CLASSIFICATION = "image_classification"


class Dataset(models.Model):
    """A named set of records of one task, with its label set.

    ``task`` decides what a record holds (``governance.services.record_rows``): a text and a
    label (classification), a prompt or conversation and its response (generation), or an
    image and a label (image classification). A model's task is its dataset's.

    ``owner`` (the account that created it) and the ``DatasetGrant`` rows are what scope an
    integration account: it writes to and reads lineage of only those datasets
    (``governance.selectors.datasets``).
    """

    Task = DatasetTask

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(
        max_length=30, choices=DatasetTask.choices, default=DatasetTask.CLASSIFICATION
    )
    labels = models.JSONField(
        help_text="Ordered class labels; a record's label is one of them. Empty for generation."
    )
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

    # No single-column index on either key: record_unique_id leads with dataset and
    # record_subject with subject, and each index more is one more write per ingested row.
    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    subject = models.ForeignKey(
        Subject, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    external_id = models.CharField(max_length=200)
    # Content is wiped on erasure; the row stays as a tombstone (ids, status, time).
    # classification: text and label; generation: the prompt (sent as ``prompt``) or the
    # turns before the target (sent as ``messages``), and the target ``response``;
    # image classification: the label, and the image's bytes in the artifact store.
    text = models.TextField(blank=True)
    label = models.CharField(max_length=200, blank=True)
    response = models.TextField(blank=True)
    messages = models.JSONField(
        null=True, blank=True, help_text="The turns before the response: [{role, content}]."
    )
    # A fresh random object key per record (never content-addressed: erasing one record
    # must never delete bytes another record still names). It stays on the tombstone, so a
    # check can ask the store that nothing is left under it.
    image_key = models.CharField(max_length=300, blank=True)
    image_digest = models.CharField(max_length=71, blank=True, help_text="sha256:<hex>")
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
