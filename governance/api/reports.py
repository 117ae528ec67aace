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
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    NamedChoiceField,
    StrictSerializer,
    ViewFormatNegotiation,
    error_responses,
    validated,
)
from governance.models import ErasureRequest
from governance.permissions import Action, allowed
from governance.services import reports

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

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


class ReportRowSerializer(serializers.Serializer[Any]):
    """One request (``services.reports.ReportRow``); times are ISO 8601 UTC, null for none."""

    class Meta:
        ref_name = "ErasureReportRow"

    request_id = serializers.IntegerField()
    type = serializers.CharField()
    subject_ref = serializers.CharField()
    channel = serializers.ChoiceField(choices=ErasureRequest.Channel.values)
    status = NamedChoiceField(ErasureRequest.Status.values, enum_name="ErasureRequestStatus")
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    extended_due_at = serializers.DateTimeField(allow_null=True)
    deadline = serializers.DateTimeField(help_text="The deadline in force.")
    completed_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.ChoiceField(choices=reports.OUTCOMES)
    records_erased = serializers.IntegerField()
    reviewer = serializers.CharField(allow_blank=True)
    decision_note = serializers.CharField(allow_blank=True)
    certificate_id = serializers.CharField(allow_blank=True)
    extension_reason = serializers.CharField(allow_blank=True)
    days_to_complete = serializers.IntegerField(allow_null=True)


class ReportSummarySerializer(serializers.Serializer[Any]):
    """Counts and response times over the period's requests (``report_summary``)."""

    class Meta:
        ref_name = "ErasureReportSummary"

    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_outcome = serializers.DictField(child=serializers.IntegerField())
    open = serializers.IntegerField()
    overdue_open = serializers.IntegerField()
    extended = serializers.IntegerField()
    records_erased = serializers.IntegerField()
    answered = serializers.IntegerField(help_text="Completed or rejected.")
    median_days_to_complete = serializers.FloatField(allow_null=True)
    p95_days_to_complete = serializers.IntegerField(allow_null=True)
    mean_days_to_complete = serializers.FloatField(allow_null=True)
    within_deadline = serializers.IntegerField()
    within_deadline_pct = serializers.FloatField(allow_null=True)


class ReportSerializer(serializers.Serializer[Any]):
    """The JSON export; ``services.reports.report_json`` renders it with the other formats."""

    class Meta:
        ref_name = "ErasureReport"

    period = inline_serializer(
        "ErasureReportPeriod",
        {  # "from" is a Python keyword: no class attribute can carry the name
            "from": serializers.DateTimeField(allow_null=True),
            "to": serializers.DateTimeField(allow_null=True, help_text="Excluded."),
        },
    )
    generated_at = serializers.DateTimeField()
    summary = ReportSummarySerializer()
    rows = ReportRowSerializer(many=True)


class ErasureReportApi(APIView):
    """Erasure requests received in a period, with decisions, certificates and response times.

    ``format``: ``json`` (default: period, summary and rows), ``csv`` (RFC 4180, one row per
    request) or ``pdf``; CSV and PDF come as attachments named after the period. The JSON
    ``period.to`` is the exclusive end. Each export is written to the audit trail.
    """

    permission_classes = (allowed(Action.REPORT_READ),)
    content_negotiation_class = ViewFormatNegotiation

    @extend_schema(
        operation_id="reports_erasures",
        parameters=[ReportFilterSerializer],
        responses={
            (200, "application/json"): ReportSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/pdf"): OpenApiTypes.BINARY,
            **error_responses(400, *SIGNED_IN),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        filters = validated(ReportFilterSerializer, request.query_params.dict())
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
