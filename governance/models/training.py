"""S3T models and their lineage: shards, slices, assignments, sequences, stages, manifests,
training jobs and tasks.

Lineage runs record → slice assignment → slice → stages that read the slice (a stage reads
the slices of its prefix). Records are assigned per model *generation*: a retrain creates a
new generation with its own shards, slices, sequences and stages; records registered after
a generation was partitioned have no assignment there ("not yet trained").
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from governance.models.datasets import Dataset, Record


class UnlearningModel(models.Model):
    """An S3T model over one dataset: its plan, recipe and current generation."""

    class Status(models.TextChoices):
        CREATED = "created"
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    class Precision(models.TextChoices):
        FP32 = "fp32"
        BF16 = "bf16"  # autocast; CPU or CUDA
        FP16 = "fp16"  # autocast with a gradient scaler; CUDA only

    class Policy(models.TextChoices):
        CYCLIC = "cyclic"
        BMS = "bms"
        RANDOM = "random"
        FULL = "full"

    class StageEpochs(models.TextChoices):
        FIXED = "fixed"  # every stage runs `epochs` (every model before this field)
        SCALED = "scaled"  # stage i of L runs ceil(epochs * L / i) (bench_accuracy.py)

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
    # Module names inside a block that get LoRA, resolved at creation from the backbone and
    # the task (unlearning.backbones.default_lora_targets) and stored, so a later default
    # never changes what an existing model trains; empty: the backbone's classic targets.
    lora_targets = models.JSONField(default=list, blank=True)
    epochs = models.PositiveSmallIntegerField(default=2)
    learning_rate = models.FloatField(default=1e-3)
    # Recorded in every stage's recipe; existing models keep "fixed" (migration 0017).
    stage_epochs = models.CharField(
        max_length=10, choices=StageEpochs.choices, default=StageEpochs.SCALED
    )
    batch_size = models.PositiveSmallIntegerField(default=32)
    max_length = models.PositiveSmallIntegerField(default=128)
    # Training arithmetic, recorded in every stage's recipe; a replay compares digests only
    # on the same device kind and precision.
    precision = models.CharField(max_length=4, choices=Precision.choices, default=Precision.FP32)
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

    # Indexed by assignment_one_per_generation (record first) and assignment_slice.
    record = models.ForeignKey(
        Record, on_delete=models.PROTECT, related_name="assignments", db_index=False
    )
    slice = models.ForeignKey(
        Slice, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
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
    # The stage file's object key in the artifact store (STORAGES["artifacts"]), e.g.
    # "model-7/gen-1/shard-000/stage-2-0.safetensors"; empty once its bytes are destroyed.
    artifact_key = models.CharField(max_length=500, blank=True)
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

    class RetrainMode(models.TextChoices):
        # The due shards re-partitioned and every one of their stages trained anew.
        FULL = "full"
        # Slices kept minus erased records; only stages whose prefix holds a dirty slice
        # are trained again, from their kept parents (services/retraining.py).
        SUFFIX = "suffix"

    model = models.ForeignKey(UnlearningModel, on_delete=models.CASCADE, related_name="jobs")
    generation = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.INITIAL)
    retrained_shards = models.JSONField(
        default=list, blank=True, help_text="Shard indices trained anew; others carried over."
    )
    reason = models.CharField(max_length=200, blank=True)
    retrain_mode = models.CharField(
        max_length=10, choices=RetrainMode.choices, blank=True, help_text="Empty: not a retrain."
    )
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
