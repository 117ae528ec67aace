"""REST API v1 record-keeping export: ``GET reports/erasures/`` (DESIGN §7).

Privacy officers and auditors take the erasure register out as JSON, CSV or PDF for a
period; every export is recorded in the audit trail (services/reports.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from governance.apis import StrictSerializer, _valid
from governance.apis_erasure import ViewFormatNegotiation
from governance.auth import roles
from governance.models import ErasureRequest
from governance.permissions import Role
from governance.services import reports

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

REPORT_READERS = roles(Role.PRIVACY_OFFICER, Role.AUDITOR)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeField(serializers.Field[date, str, str, Any]):
    """``YYYY-MM-DD`` (a whole day) or an ISO 8601 date-time (an instant; UTC when naive)."""

    default_error_messages: ClassVar[dict[str, StrOrPromise]] = {
        "invalid": "Use YYYY-MM-DD or an ISO 8601 date-time."
    }

    def to_internal_value(self, data: Any) -> date:
        if not isinstance(data, str):
            self.fail("invalid")
        if _DATE.fullmatch(data.strip()):
            value: date = serializers.DateField().run_validation(data.strip())
            return value
        try:
            instant: datetime = serializers.DateTimeField().run_validation(data)
        except serializers.ValidationError:
            self.fail("invalid")
        return instant

    def to_representation(self, value: date) -> str:
        return value.isoformat()


class ReportFilterSerializer(StrictSerializer):
    class Meta:
        ref_name = "ErasureReportFilter"

    format = serializers.ChoiceField(choices=reports.FORMATS, default="json")
    status = serializers.ChoiceField(choices=ErasureRequest.Status.values, required=False)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # "from" is a Python keyword, so these two cannot be declared as class attributes.
        fields = super().get_fields()
        fields["from"] = DateOrDateTimeField(
            required=False, help_text="First day (YYYY-MM-DD) or instant received; included."
        )
        fields["to"] = DateOrDateTimeField(
            required=False,
            help_text="Last day (YYYY-MM-DD, included whole) or instant (excluded).",
        )
        return fields


class ErasureReportApi(APIView):
    """Erasure requests received in a period, with decisions, certificates and response times.

    ``format``: ``json`` (default: period, summary and rows), ``csv`` (RFC 4180, one row per
    request) or ``pdf``; CSV and PDF come as attachments named after the period. The JSON
    ``period.to`` is the exclusive end. Each export is written to the audit trail.
    """

    permission_classes = (REPORT_READERS,)
    content_negotiation_class = ViewFormatNegotiation

    @extend_schema(
        operation_id="reports_erasures",
        parameters=[ReportFilterSerializer],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/pdf"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        filters = _valid(ReportFilterSerializer, request.query_params.dict())
        since, until = reports.report_period(start=filters.get("from"), end=filters.get("to"))
        export = reports.erasure_report_export(
            actor=request.user,
            fmt=filters["format"],
            since=since,
            until=until,
            status=filters.get("status"),
        )
        response = HttpResponse(export.content, content_type=export.content_type)
        if export.format != "json":
            response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        # Subject references: no shared cache should keep a copy.
        response["Cache-Control"] = "no-store"
        return response
