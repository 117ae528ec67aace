"""Lineage, training, erasure and audit tables. Fields, constraints and small properties only.

One module per domain; every model is importable from ``governance.models``. Writes go
through ``governance.services``; reads through ``governance.selectors``.
"""

from governance.models.audit import ApiToken, AuditCheckpoint, AuditEvent
from governance.models.datasets import Dataset, DatasetGrant, Record, Subject
from governance.models.erasure import (
    DeletionCertificate,
    ErasureEvent,
    ErasureRequest,
    ErasureRequestQuerySet,
    SigningKey,
)
from governance.models.training import (
    Sequence,
    ServingManifest,
    Shard,
    Slice,
    SliceAssignment,
    Stage,
    TrainingJob,
    TrainingTask,
    UnlearningModel,
)
from governance.models.webhooks import (
    ErasureConfirmation,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from governance.models.workers import WorkerHeartbeat

__all__ = [
    "ApiToken",
    "AuditCheckpoint",
    "AuditEvent",
    "Dataset",
    "DatasetGrant",
    "DeletionCertificate",
    "ErasureConfirmation",
    "ErasureEvent",
    "ErasureRequest",
    "ErasureRequestQuerySet",
    "Record",
    "Sequence",
    "ServingManifest",
    "Shard",
    "SigningKey",
    "Slice",
    "SliceAssignment",
    "Stage",
    "Subject",
    "TrainingJob",
    "TrainingTask",
    "UnlearningModel",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "WorkerHeartbeat",
]
