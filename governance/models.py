"""Lineage, training and audit tables. Fields, constraints and small properties only.

Lineage runs record → slice assignment → slice → stages that read the slice (a stage reads
the slices of its prefix). Records are assigned per model *generation*: a retrain creates a
new generation with its own shards, slices, sequences and stages; records registered after
a generation was partitioned have no assignment there ("not yet trained").

Writes go through ``governance.services``; reads through ``governance.selectors``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce


class Subject(models.Model):
    """A data subject, known by the reference the data platform uses for them."""

    external_ref = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.external_ref


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    labels = models.JSONField(help_text="Ordered class labels; a record's label is one of them.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


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


class UnlearningModel(models.Model):
    """An S3T model over one dataset: its plan, recipe and current generation."""

    class Status(models.TextChoices):
        CREATED = "created"
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    class Policy(models.TextChoices):
        CYCLIC = "cyclic"
        BMS = "bms"
        RANDOM = "random"
        FULL = "full"

    name = models.CharField(max_length=200, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="models")
    base_model = models.CharField(max_length=500)
    num_shards = models.PositiveSmallIntegerField()
    num_slices = models.PositiveSmallIntegerField()
    budget = models.PositiveIntegerField(help_text="Sequences per shard (B).")
    sequence_policy = models.CharField(max_length=10, choices=Policy.choices)
    slice_priors = models.JSONField(null=True, blank=True, help_text="Deletion priors for BMS.")
    lora_rank = models.PositiveSmallIntegerField(default=8)
    lora_alpha = models.PositiveSmallIntegerField(default=16)
    lora_dropout = models.FloatField(default=0.0)
    epochs = models.PositiveSmallIntegerField(default=2)
    learning_rate = models.FloatField(default=1e-3)
    batch_size = models.PositiveSmallIntegerField(default=32)
    max_length = models.PositiveSmallIntegerField(default=128)
    seed = models.BigIntegerField(default=0)
    retrain_threshold = models.PositiveSmallIntegerField(
        default=1, help_text="Retrain a shard when its serving depth falls below this."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CREATED)
    generation = models.PositiveIntegerField(default=0, help_text="0 until first trained.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(num_shards__gte=1), name="model_shards_positive"),
            models.CheckConstraint(condition=Q(num_slices__gte=1), name="model_slices_positive"),
            models.CheckConstraint(condition=Q(budget__gte=1), name="model_budget_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Shard(models.Model):
    model = models.ForeignKey(UnlearningModel, on_delete=models.CASCADE, related_name="shards")
    generation = models.PositiveIntegerField()
    index = models.PositiveSmallIntegerField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["model", "generation", "index"], name="shard_unique")
        ]

    def __str__(self) -> str:
        return f"model {self.model_id} gen {self.generation} shard {self.index}"


class Slice(models.Model):
    shard = models.ForeignKey(Shard, on_delete=models.CASCADE, related_name="slices")
    index = models.PositiveSmallIntegerField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["shard", "index"], name="slice_unique")
        ]

    def __str__(self) -> str:
        return f"shard {self.shard_id} slice {self.index}"


class SliceAssignment(models.Model):
    """Lineage: which slice of which model generation a record was placed in."""

    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="assignments")
    slice = models.ForeignKey(Slice, on_delete=models.CASCADE, related_name="assignments")
    model = models.ForeignKey(UnlearningModel, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["record", "model", "generation"], name="assignment_one_per_generation"
            )
        ]
        indexes: ClassVar = [models.Index(fields=["slice"], name="assignment_slice")]

    def __str__(self) -> str:
        return f"record {self.record_id} -> slice {self.slice_id}"


class Sequence(models.Model):
    shard = models.ForeignKey(Shard, on_delete=models.CASCADE, related_name="sequences")
    index = models.PositiveSmallIntegerField()
    order = models.JSONField(help_text="Slice indices in training order.")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["shard", "index"], name="sequence_unique")
        ]

    def __str__(self) -> str:
        return f"shard {self.shard_id} sequence {self.index} {self.order}"


class Stage(models.Model):
    """One trained layer group: keyed by its shard and prefix, shared by sequences."""

    class State(models.TextChoices):
        PENDING = "pending"
        TRAINING = "training"
        TRAINED = "trained"
        DEACTIVATED = "deactivated"
        DESTROYED = "destroyed"
        # An older generation's stage after a retrain took over: bytes destroyed, not erased.
        RETIRED = "retired"

    shard = models.ForeignKey(Shard, on_delete=models.CASCADE, related_name="stages")
    prefix = models.CharField(max_length=200, help_text='Slice indices read, e.g. "2-0-1".')
    position = models.PositiveSmallIntegerField(help_text="1-based; also the layer group.")
    slices = models.ManyToManyField(Slice, related_name="stages", help_text="Stage lineage.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    artifact_path = models.CharField(max_length=500, blank=True)
    tensor_digest = models.CharField(max_length=80, blank=True)
    lineage_digest = models.CharField(max_length=80, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    recipe = models.JSONField(default=dict, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["shard", "prefix"], name="stage_unique_prefix"),
            models.CheckConstraint(condition=Q(position__gte=1), name="stage_position_positive"),
        ]
        indexes: ClassVar = [models.Index(fields=["shard", "state"], name="stage_shard_state")]

    def __str__(self) -> str:
        return f"shard {self.shard_id} stage {self.prefix} ({self.state})"

    @property
    def prefix_tuple(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.prefix.split("-"))


class ServingManifest(models.Model):
    """What a model serves: per shard a sequence and depth. Versions only grow."""

    model = models.ForeignKey(UnlearningModel, on_delete=models.CASCADE, related_name="manifests")
    version = models.PositiveIntegerField()
    generation = models.PositiveIntegerField()
    entries = models.JSONField(help_text="[{shard, sequence, depth, stages: [{id, digest}]}]")
    digest = models.CharField(max_length=80)
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["model", "version"], name="manifest_unique_version")
        ]
        ordering: ClassVar = ["model", "-version"]

    def __str__(self) -> str:
        return f"model {self.model_id} manifest v{self.version}"


class TrainingJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Kind(models.TextChoices):
        INITIAL = "initial"
        RETRAIN = "retrain"

    model = models.ForeignKey(UnlearningModel, on_delete=models.CASCADE, related_name="jobs")
    generation = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.INITIAL)
    retrained_shards = models.JSONField(
        default=list, blank=True, help_text="Shard indices trained anew; others carried over."
    )
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stages_total = models.PositiveIntegerField(default=0)
    stages_done = models.PositiveIntegerField(default=0)
    current_loss = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.status})"


class TrainingTask(models.Model):
    """One (shard, sequence) unit of a job: what a Celery task trains."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="tasks")
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="tasks")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["job", "sequence"], name="task_unique_sequence")
        ]

    def __str__(self) -> str:
        return f"training task {self.pk} ({self.status})"


class ErasureRequestQuerySet(models.QuerySet["ErasureRequest"]):
    """The deadline rules as SQL, the twins of ``ErasureRequest.deadline`` and ``is_overdue``."""

    def open(self) -> ErasureRequestQuerySet:
        return self.exclude(status__in=ErasureRequest.CLOSED)

    def with_deadline(self) -> ErasureRequestQuerySet:
        """Annotate ``deadline_at``: the extended deadline when there is one, else ``due_at``."""
        return self.annotate(deadline_at=Coalesce("extended_due_at", "due_at"))

    def overdue(self, now: datetime) -> ErasureRequestQuerySet:
        """Open requests whose deadline in force has passed: the one meaning of "overdue"."""
        return self.open().with_deadline().filter(deadline_at__lt=now)  # type: ignore[misc]

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
        """Open and past the deadline in force (``ErasureRequestQuerySet.overdue`` in SQL)."""
        return self.is_open and self.deadline < now

    # State-machine guards: the services enforce them, the views and API ask them.
    @property
    def can_approve(self) -> bool:
        return self.status == self.Status.RECEIVED

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
