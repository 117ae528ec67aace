"""REST API v1 for erasure requests and certificates (DESIGN §7).

Privacy officers decide; integration accounts file and follow their own requests;
auditors read everything. The public key that verifies certificates is public.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.apis import StrictCharField, StrictSerializer, _valid
from governance.auth import roles, user_has_role
from governance.errors import ApplicationError
from governance.models import ErasureRequest
from governance.permissions import Role
from governance.services import erasure

FILERS = roles(Role.PRIVACY_OFFICER, Role.INTEGRATION)
READERS = roles(Role.PRIVACY_OFFICER, Role.AUDITOR, Role.INTEGRATION)
OFFICERS = roles(Role.PRIVACY_OFFICER)
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _visible(request: Request) -> QuerySet[ErasureRequest]:
    """Officers and auditors see every request; an integration account sees its own."""
    requests = ErasureRequest.objects.select_related("filed_by", "approved_by")
    if user_has_role(request.user, Role.PRIVACY_OFFICER, Role.AUDITOR):
        return requests
    return requests.filter(filed_by=request.user.pk)


def _get(request: Request, request_id: int) -> ErasureRequest:
    return get_object_or_404(_visible(request), pk=request_id)


def request_body(req: ErasureRequest, *, detail: bool = True) -> dict[str, Any]:
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
        "overdue": erasure.erasure_overdue(req),
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
            "history": [
                {
                    "at": e.at,
                    "actor": e.actor,
                    "action": e.action,
                    "status": e.status,
                    "note": e.note,
                }
                for e in req.events.all()
            ],
        }
    return body


class ErasureRequestListCreateApi(APIView):
    def get_permissions(self) -> list[Any]:
        return [FILERS()] if self.request.method == "POST" else [READERS()]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ErasureRequestInput"

        subject_id = StrictCharField(max_length=200)
        reason = StrictCharField(max_length=5000, required=False, default="", allow_blank=True)
        channel = serializers.ChoiceField(
            choices=ErasureRequest.Channel.values, default=ErasureRequest.Channel.API
        )
        received_at = serializers.DateTimeField(required=False)

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "ErasureRequestFilter"

        status = serializers.ChoiceField(choices=ErasureRequest.Status.values, required=False)
        subject_id = serializers.CharField(max_length=200, required=False)
        overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
        offset = serializers.IntegerField(min_value=0, default=0)

    @extend_schema(
        request=InputSerializer,
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER)],
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request.data)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not 1 <= len(key.strip()) <= 200:
            raise ApplicationError(
                code="invalid",
                message=f"{IDEMPOTENCY_HEADER}: must be 1 to 200 characters",
                details={IDEMPOTENCY_HEADER: ["1 to 200 characters"]},
            )
        req, created = erasure.erasure_request_create(
            actor=request.user,
            subject_ref=data["subject_id"].strip(),
            reason=data["reason"],
            channel=data["channel"],
            idempotency_key=key.strip() if key is not None else None,
            received_at=data.get("received_at"),
        )
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(
            request_body(req),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers=headers,
        )

    @extend_schema(
        operation_id="erasure_requests_list",
        parameters=[FilterSerializer],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        filters = _valid(self.FilterSerializer, request.query_params.dict())
        requests = _visible(request).select_related("certificate")
        if "status" in filters:
            requests = requests.filter(status=filters["status"])
        if "subject_id" in filters:
            requests = requests.filter(subject_ref=filters["subject_id"])
        if filters["overdue"] is not None:
            open_ = requests.exclude(status__in=["completed", "rejected"])
            late = _late(open_)
            requests = late if filters["overdue"] else requests.exclude(pk__in=late)
        total = requests.count()
        page = requests[filters["offset"] : filters["offset"] + filters["limit"]]
        return Response({"count": total, "results": [request_body(r, detail=False) for r in page]})


def _late(requests: QuerySet[ErasureRequest]) -> QuerySet[ErasureRequest]:
    from django.db.models import Q

    now = timezone.now()
    return requests.filter(
        Q(extended_due_at__isnull=True, due_at__lt=now) | Q(extended_due_at__lt=now)
    )


class ErasureRequestDetailApi(APIView):
    permission_classes = (READERS,)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, request_id: int) -> Response:
        return Response(request_body(_get(request, request_id)))


class NoteSerializer(StrictSerializer):
    class Meta:
        ref_name = "ErasureNoteInput"

    note = StrictCharField(max_length=5000, required=False, default="", allow_blank=True)


class ReasonSerializer(StrictSerializer):
    class Meta:
        ref_name = "ErasureReasonInput"

    reason = StrictCharField(max_length=5000)


class ErasureRequestApproveApi(APIView):
    permission_classes = (OFFICERS,)

    @extend_schema(request=NoteSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, request_id: int) -> Response:
        target = _get(request, request_id)  # an unknown request is 404 whatever the body
        data = _valid(NoteSerializer, request.data or {})
        req = erasure.erasure_request_approve(actor=request.user, request=target, note=data["note"])
        return Response(request_body(req))


class ErasureRequestRejectApi(APIView):
    permission_classes = (OFFICERS,)

    @extend_schema(request=ReasonSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, request_id: int) -> Response:
        target = _get(request, request_id)  # an unknown request is 404 whatever the body
        data = _valid(ReasonSerializer, request.data or {})
        req = erasure.erasure_request_reject(
            actor=request.user, request=target, reason=data["reason"]
        )
        return Response(request_body(req))


class ErasureRequestExtendApi(APIView):
    permission_classes = (OFFICERS,)

    @extend_schema(request=ReasonSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, request_id: int) -> Response:
        target = _get(request, request_id)  # an unknown request is 404 whatever the body
        data = _valid(ReasonSerializer, request.data or {})
        req = erasure.erasure_request_extend(
            actor=request.user, request=target, reason=data["reason"]
        )
        return Response(request_body(req))


class ErasureRequestRetryApi(APIView):
    permission_classes = (OFFICERS,)

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, request_id: int) -> Response:
        req = erasure.erasure_request_retry(actor=request.user, request=_get(request, request_id))
        return Response(request_body(req))


class ViewFormatNegotiation(DefaultContentNegotiation):
    """``?format=`` picks the view's own output (JSON or PDF), not a DRF renderer, which
    would answer 404 for a format it has no renderer for."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


class CertificateApi(APIView):
    """The signed certificate as issued; ``?format=pdf`` renders it for people."""

    permission_classes = (READERS,)
    content_negotiation_class = ViewFormatNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "pdf"])],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, request_id: int) -> Response | HttpResponse:
        req = _get(request, request_id)
        certificate = getattr(req, "certificate", None)
        if certificate is None:
            raise ApplicationError(
                code="not_found",
                status=404,
                message=f"certificate: request {req.pk} is {req.status}; "
                "a certificate is issued when it completes",
            )
        fmt = request.query_params.get("format", "json")
        if fmt == "pdf":
            from governance.certificates import certificate_pdf

            response = HttpResponse(certificate_pdf(certificate.envelope), "application/pdf")
            name = f"erasure-certificate-{req.pk}.pdf"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        if fmt != "json":
            raise ApplicationError(
                code="invalid",
                message="format: must be json or pdf",
                details={"format": ["json or pdf"]},
            )
        return Response(certificate.envelope)


class PublicKeyApi(APIView):
    """The Ed25519 public key that verifies certificates (public by design)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        from governance.certificates import public_key_info

        return Response(public_key_info())


class CertificateVerifyApi(APIView):
    """Check a certificate someone holds: its signature, and its claims against lineage."""

    permission_classes = (READERS,)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        from governance.certificates import certificate_verify

        signature = certificate_verify(request.data)
        claims = erasure.certificate_claims_check(request.data) if signature.ok else []
        return Response(
            {
                "ok": signature.ok and all(c["ok"] for c in claims),
                "signature": {
                    "ok": signature.ok,
                    "key_id": signature.key_id,
                    "reason": signature.reason or None,
                },
                "claims": claims,
            }
        )
