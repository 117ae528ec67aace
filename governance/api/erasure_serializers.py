"""What the erasure-request endpoints answer: a request, its history and impact preview.

``request_fields`` gathers a request's fields and the serializers render them. The impact
preview is stored on the request as the impact selector computed it (at intake, again at
approval) and is served as stored: ``ImpactField`` only describes its shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import ReturnDict

from governance.api.common import NamedChoiceField
from governance.api.confirmations import ConfirmationsSerializer, confirmations_fields
from governance.models import ErasureEvent, ErasureRequest


class ImpactShardSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureImpactShard"

    shard = serializers.IntegerField()
    depth_before = serializers.IntegerField(help_text="Serving depth now.")
    depth_after = serializers.IntegerField(help_text="Serving depth once the stages go.")
    sequence_before = serializers.IntegerField(allow_null=True)
    sequence_after = serializers.IntegerField(allow_null=True)
    slices = serializers.ListField(
        child=serializers.IntegerField(), help_text="Slices holding the subject's records."
    )


class TruncatedSequenceSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureTruncatedSequence"

    shard = serializers.IntegerField()
    sequence = serializers.IntegerField()
    order = serializers.ListField(child=serializers.IntegerField(), help_text="Slice order.")
    depth_before = serializers.IntegerField()
    depth_after = serializers.IntegerField()


class ImpactGenerationSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureImpactGeneration"

    generation = serializers.IntegerField()
    shards = ImpactShardSerializer(many=True)
    sequences_truncated = TruncatedSequenceSerializer(many=True)


class ImpactModelSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureImpactModel"

    model_id = serializers.IntegerField()
    name = serializers.CharField()
    stages_to_deactivate = serializers.IntegerField()
    generations = ImpactGenerationSerializer(
        many=True, help_text="The serving generation and, during a retrain, the new one."
    )
    retraining_needed = serializers.BooleanField()


class ImpactSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureImpact"

    subject_ref = serializers.CharField()
    records_found = serializers.IntegerField(help_text="Active records to erase.")
    records_already_erased = serializers.IntegerField()
    records_not_yet_trained = serializers.IntegerField(help_text="Need no model action.")
    datasets = serializers.ListField(child=serializers.IntegerField())
    models = ImpactModelSerializer(many=True)
    computed_at = serializers.DateTimeField()


@extend_schema_field(ImpactSerializer)
class ImpactField(serializers.JSONField):
    """The stored preview, as stored: a request filed before a field was added or dropped
    still shows the preview its decision was taken on."""


class ErasureEventSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureHistoryEvent"

    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField(help_text="filed, approved, rejected, extended, ...")
    status = NamedChoiceField(
        ErasureRequest.Status.values,
        enum_name="ErasureRequestStatus",
        help_text="The request's status after this step.",
    )
    note = serializers.CharField(allow_blank=True)


class ErasureRequestSerializer(serializers.Serializer[Any]):
    """A request as listed."""

    class Meta:
        ref_name = "ErasureRequestSummary"

    id = serializers.IntegerField()
    subject_id = serializers.CharField()
    status = NamedChoiceField(ErasureRequest.Status.values, enum_name="ErasureRequestStatus")
    channel = serializers.ChoiceField(choices=ErasureRequest.Channel.values)
    reason = serializers.CharField(allow_blank=True)
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField(help_text="Received + one month (GDPR Art. 12(3)).")
    extended_due_at = serializers.DateTimeField(allow_null=True)
    deadline = serializers.DateTimeField(help_text="The deadline in force.")
    overdue = serializers.BooleanField(
        help_text="Past its deadline: open, or a recipient's confirmation outstanding."
    )
    filed_by = serializers.CharField(allow_null=True)
    approved_by = serializers.CharField(allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    certificate_id = serializers.CharField(allow_null=True)


class ErasureRequestDetailSerializer(ErasureRequestSerializer):
    """A request in full: what was decided, the impact preview and the history."""

    class Meta:
        ref_name = "ErasureRequest"

    extension_reason = serializers.CharField(allow_blank=True)
    decision_note = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_null=True, help_text="Why execution last failed.")
    impact = ImpactField(help_text="Impact preview, as last computed.")
    history = ErasureEventSerializer(many=True)
    confirmations = ConfirmationsSerializer(help_text="Recipients' confirmations (Art. 19).")


class ErasureRequestPageSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureRequestPage"

    count = serializers.IntegerField(help_text="Requests matching the filters, all pages.")
    results = ErasureRequestSerializer(many=True)


def request_body(req: ErasureRequest, *, now: datetime) -> ReturnDict[str, Any]:
    """``req`` in full, rendered by ``ErasureRequestDetailSerializer``."""
    return ErasureRequestDetailSerializer(request_fields(req, now=now)).data


def request_fields(req: ErasureRequest, *, now: datetime, detail: bool = True) -> dict[str, Any]:
    """The fields of ``ErasureRequestDetailSerializer`` (or of the summary, ``detail=False``);
    ``overdue`` is judged at ``now``, one instant for a whole page."""
    certificate = getattr(req, "certificate", None)
    body: dict[str, Any] = {
        "id": req.pk,
        "subject_id": req.subject_ref,
        "status": req.status,
        "channel": req.channel,
        "reason": req.reason,
        "received_at": req.received_at,
        "due_at": req.due_at,
        "extended_due_at": req.extended_due_at,
        "deadline": req.deadline,
        "overdue": req.is_overdue(now),
        "filed_by": req.filed_by.get_username() if req.filed_by else None,
        "approved_by": req.approved_by.get_username() if req.approved_by else None,
        "approved_at": req.approved_at,
        "completed_at": req.completed_at,
        "certificate_id": certificate.certificate_id if certificate else None,
    }
    if detail:
        body |= {
            "extension_reason": req.extension_reason,
            "decision_note": req.decided_note,
            "error": req.error or None,
            "impact": req.impact,
            "history": [_event(e) for e in req.events.all()],
            "confirmations": confirmations_fields(req),
        }
    return body


def _event(e: ErasureEvent) -> dict[str, Any]:
    return {"at": e.at, "actor": e.actor, "action": e.action, "status": e.status, "note": e.note}
