"""The API's answers as typed dictionaries (the shapes of ``GET /api/v1/schema/``).

Answers stay plain JSON, so a field the server adds later is still there for the caller;
these types only tell an editor and a type checker what to expect.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

ErasureStatus = Literal["received", "approved", "rejected", "executing", "completed", "failed"]
# A request in one of these will not change again by itself: ``wait=True`` stops there.
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "rejected"})
ConfirmationStatus = Literal["erased", "not_held", "failed"]


class Dataset(TypedDict):
    id: int
    name: str
    task: str
    labels: list[str]
    created_at: str


class ErasureHistoryEvent(TypedDict):
    at: str
    actor: str
    action: str
    status: ErasureStatus
    note: str


class ErasureRequestSummary(TypedDict):
    id: int
    subject_id: str
    status: ErasureStatus
    channel: str
    reason: str
    received_at: str
    due_at: str
    extended_due_at: str | None
    deadline: str
    overdue: bool
    filed_by: str | None
    approved_by: str | None
    approved_at: str | None
    completed_at: str | None
    certificate_id: str | None


class ErasureRequest(ErasureRequestSummary):
    extension_reason: str
    decision_note: str
    error: str | None
    impact: dict[str, Any]
    history: list[ErasureHistoryEvent]


class ErasureRequestPage(TypedDict):
    count: int
    results: list[ErasureRequestSummary]


class Signature(TypedDict):
    algorithm: str
    key_id: str
    value: str


class CertificateEnvelope(TypedDict):
    certificate: dict[str, Any]
    signature: Signature


class PublicKey(TypedDict):
    key_id: str
    algorithm: str
    public_key_pem: str
    public_key_raw: str


class PublicKeyListed(PublicKey):
    first_used_at: str | None
    current: bool
