"""``erasure-requests/{id}/confirmations/``: recipients confirm a completed erasure (Art. 19).

A subscription with ``requires_confirmation`` that was sent ``erasure_request.completed``
owes an answer, given with its owner's token: ``erased``, ``not_held`` or ``failed``.
Whoever may read the request, and each recipient, lists the answers; the request's own
body carries the same summary (``confirmations``).
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    NamedChoiceField,
    StrictCharField,
    StrictSerializer,
    error_responses,
    validated,
)
from governance.models import ErasureConfirmation, ErasureRequest
from governance.permissions import Action, allowed
from governance.selectors.erasure import erasure_requests_visible
from governance.selectors.webhooks import erasure_confirmations, erasure_requests_confirmable
from governance.services.confirmations import ANSWERS, erasure_confirmation_record


class ConfirmationSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureConfirmation"

    id = serializers.IntegerField()
    recipient = serializers.CharField(help_text="The subscription's owner and URL.")
    owner = serializers.CharField()
    subscription_id = serializers.IntegerField(allow_null=True, help_text="Null once deleted.")
    status = NamedChoiceField(
        ErasureConfirmation.Status.values, enum_name="ErasureConfirmationStatus"
    )
    detail = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField(help_text="When the completed event was sent.")
    confirmed_at = serializers.DateTimeField(allow_null=True)


class ConfirmationsSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErasureConfirmations"

    expected = serializers.IntegerField(help_text="Recipients that must confirm.")
    pending = serializers.IntegerField(help_text="Still pending, or answered failed.")
    complete = serializers.BooleanField(help_text="Every recipient erased or did not hold it.")
    recipients = ConfirmationSerializer(many=True)


def confirmations_fields(request: ErasureRequest) -> dict[str, Any]:
    """What ``ConfirmationsSerializer`` renders for ``request``."""
    rows = erasure_confirmations(request)
    pending = sum(1 for c in rows if c.is_outstanding)
    return {
        "expected": len(rows),
        "pending": pending,
        "complete": pending == 0,
        "recipients": [
            {
                "id": c.pk,
                "recipient": c.recipient,
                "owner": c.owner.get_username(),
                "subscription_id": c.subscription_id,
                "status": c.status,
                "detail": c.detail,
                "created_at": c.created_at,
                "confirmed_at": c.confirmed_at,
            }
            for c in rows
        ],
    }


class ErasureConfirmationApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ErasureConfirmationInput"

        status = serializers.ChoiceField(choices=list(ANSWERS))
        detail = StrictCharField(max_length=5000, required=False, default="", allow_blank=True)

    def get_permissions(self) -> list[BasePermission]:
        # Every role that may confirm (webhook_manage) may also read requests.
        action = Action.WEBHOOK_MANAGE if self.request.method == "POST" else Action.ERASURE_READ
        return [allowed(action)()]

    def _request(self, request: Request, request_id: int) -> ErasureRequest:
        visible = erasure_requests_visible(request.user)
        return get_object_or_404(erasure_requests_confirmable(request.user, visible), pk=request_id)

    @extend_schema(
        operation_id="erasure_requests_confirmations_list",
        responses={200: ConfirmationsSerializer, **error_responses(404, *SIGNED_IN)},
    )
    def get(self, request: Request, request_id: int) -> Response:
        target = self._request(request, request_id)
        return Response(ConfirmationsSerializer(confirmations_fields(target)).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: ConfirmationsSerializer, **error_responses(400, 404, 409, *SIGNED_IN)},
    )
    def post(self, request: Request, request_id: int) -> Response:
        target = self._request(request, request_id)
        data = validated(self.InputSerializer, request.data)
        erasure_confirmation_record(
            actor=request.user, request=target, status=data["status"], detail=data["detail"]
        )
        return Response(ConfirmationsSerializer(confirmations_fields(target)).data)
