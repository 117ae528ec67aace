"""``audit/``: the hash-chained trail, paged by sequence number, and its verification."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    DbIntegerField,
    StrictSerializer,
    error_responses,
    validated,
)
from governance.models import AuditEvent
from governance.permissions import Action, allowed
from governance.selectors.audit import audit_event_list
from governance.services.audit_integrity import audit_chain_verify


class AuditEventSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "AuditEvent"

    seq = serializers.IntegerField(help_text="Position in the chain, from 1.")
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(help_text="user:<name>, or a system actor such as worker.")
    action = serializers.CharField(help_text="What happened, e.g. erasure.approved.")
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    payload = serializers.JSONField(help_text="The action's details, as hashed.")
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


def _event(e: AuditEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "created_at": e.created_at,
        "actor": e.actor,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "payload": e.payload,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


class AuditEventListApi(APIView):
    """The audit trail in chain order, filtered, paged by sequence number (keyset)."""

    permission_classes = (allowed(Action.AUDIT_READ),)

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "AuditEventFilter"

        after_seq = DbIntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
        action = serializers.CharField(max_length=100, required=False)
        actor = serializers.CharField(max_length=200, required=False)
        object_type = serializers.CharField(max_length=100, required=False)
        object_id = serializers.CharField(max_length=100, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "AuditEventPage"

        results = AuditEventSerializer(many=True)
        next_after_seq = serializers.IntegerField(
            allow_null=True, help_text="Pass as after_seq for the next page; null on the last."
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params.dict())
        events = audit_event_list(**filters)
        last = events[-1].seq if len(events) == filters["limit"] else None
        page = {"results": [_event(e) for e in events], "next_after_seq": last}
        return Response(self.OutputSerializer(page).data)


class AuditVerifyApi(APIView):
    """Re-hash the whole chain now and report the first bad event, if any."""

    permission_classes = (allowed(Action.AUDIT_READ),)

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "AuditVerifyOutput"

        ok = serializers.BooleanField()
        checked = serializers.IntegerField(help_text="Events re-hashed.")
        head = serializers.CharField(help_text="Hash of the last event checked.")
        first_bad_seq = serializers.IntegerField(
            allow_null=True,
            help_text="Where the trouble starts (for a cut tail: the first missing).",
        )
        reason = serializers.CharField(allow_null=True, help_text="What is wrong; null when ok.")
        head_seq = serializers.IntegerField(help_text="Sequence number of the last event.")
        checkpoints_checked = serializers.IntegerField(
            help_text="Signed checkpoints the trail was checked against."
        )
        certificates_checked = serializers.IntegerField(
            help_text="Certificates whose chain head and issuance event were checked."
        )
        warnings = serializers.ListField(
            child=serializers.CharField(),
            help_text="Anchors not used (signed by a key this server does not hold).",
        )

    @extend_schema(responses={200: OutputSerializer, **error_responses(*SIGNED_IN)})
    def get(self, request: Request) -> Response:
        report = audit_chain_verify()
        body = {
            "ok": report.ok,
            "checked": report.checked,
            "head": report.head,
            "first_bad_seq": report.first_bad_seq,
            "reason": report.reason or None,
            "head_seq": report.head_seq,
            "checkpoints_checked": report.checkpoints_checked,
            "certificates_checked": report.certificates_checked,
            "warnings": list(report.warnings),
        }
        return Response(self.OutputSerializer(body).data)
