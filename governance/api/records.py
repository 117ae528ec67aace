"""``datasets/{id}/records/``: bulk upsert as JSON, JSONL, CSV or a multipart upload.

Reading the rows is ``governance.api.ingest``, checking them
``governance.services.record_rows``; writing them is the
``records_upsert`` service. Rejected rows come back by index, and the others are kept.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import SIGNED_IN, error_responses
from governance.api.ingest import INGEST_PARSER_CLASSES, rows_from_request
from governance.permissions import Action, allowed
from governance.selectors.datasets import datasets_visible
from governance.services.datasets import records_upsert
from governance.services.record_rows import validate_rows


class RejectedRowSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "RejectedRow"

    index = serializers.IntegerField(help_text="Position of the row in the request, from 0.")
    field = serializers.CharField(allow_null=True, help_text="The field at fault, if one.")
    error = serializers.CharField()


class RecordUpsertApi(APIView):
    """Bulk upsert as JSON, JSONL or CSV (raw body or a multipart ``file``)."""

    permission_classes = (allowed(Action.DATASET_WRITE),)
    parser_classes = INGEST_PARSER_CLASSES

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "RecordUpsertOutput"

        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        unchanged = serializers.IntegerField()
        rejected = RejectedRowSerializer(many=True)

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={200: OutputSerializer, **error_responses(400, 404, 413, 415, *SIGNED_IN)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        # Only datasets in the caller's scope (an integration account's own or granted).
        dataset = get_object_or_404(datasets_visible(request.user), pk=dataset_id)
        rows = rows_from_request(request)
        valid, errors = validate_rows(
            rows, labels=dataset.labels, max_rows=settings.LETHE_MAX_BATCH_ROWS
        )
        result = records_upsert(actor=request.user, dataset=dataset, rows=valid)
        rejected = sorted([e.as_dict() for e in errors] + result.rejected, key=_index)
        body = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": rejected,
        }
        return Response(self.OutputSerializer(body).data)


def _index(row: dict[str, Any]) -> int:
    return int(row["index"])
