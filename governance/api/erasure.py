"""``erasure-requests/``: file, list and read requests; the privacy officer's decisions.

Privacy officers decide; integration accounts file and follow their own requests;
auditors read everything (``selectors.erasure.erasure_requests_visible``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    DbIntegerField,
    StrictCharField,
    StrictSerializer,
    SubjectRefField,
    error_responses,
    validated,
)
from governance.api.erasure_serializers import (
    ErasureRequestDetailSerializer,
    ErasureRequestPageSerializer,
    request_body,
    request_fields,
)
from governance.errors import ApplicationError
from governance.models import ErasureRequest, ErasureRequestQuerySet
from governance.permissions import Action, allowed
from governance.selectors.erasure import erasure_requests_by_overdue, erasure_requests_visible
from governance.services import erasure

IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")
# A decision on a request in the wrong state is a 409; an unknown request a 404.
DECISION_ERRORS = error_responses(400, 404, 409, *SIGNED_IN)


def visible_request(request: Request, request_id: int) -> ErasureRequest:
    """The request ``request_id`` if the caller may see it, else 404 (not 403: another
    account's request must not be confirmed to exist)."""
    return get_object_or_404(erasure_requests_visible(request.user), pk=request_id)


class ErasureRequestListCreateApi(APIView):
    def get_permissions(self) -> list[BasePermission]:
        action = Action.ERASURE_FILE if self.request.method == "POST" else Action.ERASURE_READ
        return [allowed(action)()]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ErasureRequestInput"

        subject_id = SubjectRefField()
        reason = StrictCharField(max_length=5000, required=False, default="", allow_blank=True)
        channel = serializers.ChoiceField(
            choices=ErasureRequest.Channel.values, default=ErasureRequest.Channel.API
        )
        received_at = serializers.DateTimeField(required=False)

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "ErasureRequestFilter"

        status = serializers.ChoiceField(choices=ErasureRequest.Status.values, required=False)
        subject_id = SubjectRefField(required=False)
        overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
        offset = DbIntegerField(min_value=0, default=0)

    @extend_schema(
        request=InputSerializer,
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER)],
        responses={
            201: ErasureRequestDetailSerializer,
            200: ErasureRequestDetailSerializer,
            **error_responses(400, 409, 422, *SIGNED_IN),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        key = _idempotency_key(request)
        req, created = erasure.erasure_request_create(
            actor=request.user,
            subject_ref=data["subject_id"],
            reason=data["reason"],
            channel=data["channel"],
            idempotency_key=key,
            received_at=data.get("received_at"),
        )
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(
            request_body(req, now=timezone.now()),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers=headers,
        )

    @extend_schema(
        operation_id="erasure_requests_list",
        parameters=[FilterSerializer],
        responses={200: ErasureRequestPageSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params.dict())
        now = timezone.now()
        requests = _filtered(erasure_requests_visible(request.user), filters, now=now)
        total = requests.count()
        page = requests.select_related("certificate")[
            filters["offset"] : filters["offset"] + filters["limit"]
        ]
        results = [request_fields(r, now=now, detail=False) for r in page]
        return Response(ErasureRequestPageSerializer({"count": total, "results": results}).data)


def _idempotency_key(request: Request) -> str | None:
    """The header's key, stripped; 1 to 200 printable ASCII characters (a structured-field
    string, as the IETF Idempotency-Key draft has it). A control character such as NUL
    would be refused by PostgreSQL, and a 500 then."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key.strip()):
        rule = "1 to 200 printable ASCII characters"
        raise ApplicationError(
            code="invalid",
            message=f"{IDEMPOTENCY_HEADER}: must be {rule}",
            details={IDEMPOTENCY_HEADER: [rule]},
        )
    return key.strip()


def _filtered(
    requests: ErasureRequestQuerySet, filters: dict[str, Any], *, now: datetime
) -> ErasureRequestQuerySet:
    if "status" in filters:
        requests = requests.filter(status=filters["status"])
    if "subject_id" in filters:
        requests = requests.filter(subject_ref=filters["subject_id"])
    if filters["overdue"] is not None:
        requests = erasure_requests_by_overdue(requests, overdue=filters["overdue"], now=now)
    return requests


class ErasureRequestDetailApi(APIView):
    permission_classes = (allowed(Action.ERASURE_READ),)

    @extend_schema(
        responses={200: ErasureRequestDetailSerializer, **error_responses(404, *SIGNED_IN)}
    )
    def get(self, request: Request, request_id: int) -> Response:
        return Response(request_body(visible_request(request, request_id), now=timezone.now()))


class NoteSerializer(StrictSerializer):
    class Meta:
        ref_name = "ErasureNoteInput"

    note = StrictCharField(max_length=5000, required=False, default="", allow_blank=True)


class ReasonSerializer(StrictSerializer):
    class Meta:
        ref_name = "ErasureReasonInput"

    reason = StrictCharField(max_length=5000)


def _queued_response(req: ErasureRequest) -> Response:
    """200 when the broker took the execution message; 202 when it was unreachable: the
    decision is recorded and audited all the same, and execution is queued as soon as a
    worker reconnects (docs/operations.md, "Workers and health")."""
    code = status.HTTP_202_ACCEPTED if req.execution_queued is False else status.HTTP_200_OK
    return Response(request_body(req, now=timezone.now()), status=code)


QUEUED_RESPONSES = {
    200: ErasureRequestDetailSerializer,
    202: OpenApiResponse(
        ErasureRequestDetailSerializer,
        description="Decision recorded; execution pending: the task broker was unreachable, "
        "and the request is queued when a worker reconnects.",
    ),
}


class ErasureRequestApproveApi(APIView):
    permission_classes = (allowed(Action.ERASURE_DECIDE),)

    @extend_schema(request=NoteSerializer, responses={**QUEUED_RESPONSES, **DECISION_ERRORS})
    def post(self, request: Request, request_id: int) -> Response:
        target = visible_request(request, request_id)  # unknown: 404 whatever the body
        data = validated(NoteSerializer, request.data or {})
        req = erasure.erasure_request_approve(actor=request.user, request=target, note=data["note"])
        return _queued_response(req)


class _ReasonedDecisionApi(APIView):
    """A decision that must say why (reject, extend): the same body and answers."""

    permission_classes = (allowed(Action.ERASURE_DECIDE),)

    def decide(self, *, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
        raise NotImplementedError

    @extend_schema(
        request=ReasonSerializer,
        responses={200: ErasureRequestDetailSerializer, **DECISION_ERRORS},
    )
    def post(self, request: Request, request_id: int) -> Response:
        target = visible_request(request, request_id)  # unknown: 404 whatever the body
        data = validated(ReasonSerializer, request.data or {})
        req = self.decide(actor=request.user, request=target, reason=data["reason"])
        return Response(request_body(req, now=timezone.now()))


class ErasureRequestRejectApi(_ReasonedDecisionApi):
    """Refuse a received request; the reason is recorded with the decision."""

    def decide(self, *, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
        return erasure.erasure_request_reject(actor=actor, request=request, reason=reason)


class ErasureRequestExtendApi(_ReasonedDecisionApi):
    """Extend an open request's deadline once, by two months (GDPR Art. 12(3)), saying why."""

    def decide(self, *, actor: Any, request: ErasureRequest, reason: str) -> ErasureRequest:
        return erasure.erasure_request_extend(actor=actor, request=request, reason=reason)


class ErasureRequestRetryApi(APIView):
    permission_classes = (allowed(Action.ERASURE_DECIDE),)

    @extend_schema(request=None, responses={**QUEUED_RESPONSES, **DECISION_ERRORS})
    def post(self, request: Request, request_id: int) -> Response:
        target = visible_request(request, request_id)
        req = erasure.erasure_request_retry(actor=request.user, request=target)
        return _queued_response(req)
