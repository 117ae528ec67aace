"""``datasets/{id}/records/``: bulk upsert as JSON, JSONL, CSV or a multipart upload.

Reading the rows is ``governance.api.ingest``, checking them
``governance.services.record_rows``; writing them is the
``records_upsert`` service. Rejected rows come back by index, and the others are kept.
What a row holds depends on the dataset's task (docs/tasks.md); the request schema below
documents each shape.
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
from governance.api.ingest import INGEST_PARSER_CLASSES, ingest_from_request
from governance.permissions import Action, allowed
from governance.selectors.datasets import datasets_visible
from governance.services.datasets import records_upsert
from governance.services.record_rows import validate_rows


def _strings(*names: str, **described: str) -> dict[str, Any]:
    """An object schema of required string fields, no others."""
    properties = {name: {"type": "string", "minLength": 1} for name in names}
    for name, text in described.items():
        properties[name] = {"type": "string", "minLength": 1, "description": text}
    return {
        "type": "object",
        "properties": properties,
        "required": [*names, *described],
        "additionalProperties": False,
    }


_TURN = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {"type": "string", "minLength": 1},
    },
    "required": ["role", "content"],
    "additionalProperties": False,
}
# One row per task (docs/tasks.md); which one applies is the dataset's task.
ROW_SHAPES: list[dict[str, Any]] = [
    {"title": "ClassificationRow", **_strings("external_id", "subject_id", "text", "label")},
    {
        "title": "GenerationPromptRow",
        **_strings("external_id", "subject_id", "prompt", response="The target output."),
    },
    {
        "title": "GenerationMessagesRow",
        "type": "object",
        "properties": {
            "external_id": {"type": "string", "minLength": 1},
            "subject_id": {"type": "string", "minLength": 1},
            "messages": {
                "type": "array",
                "minItems": 2,
                "items": _TURN,
                "description": "A conversation; its last turn, the assistant's, is the target.",
            },
        },
        "required": ["external_id", "subject_id", "messages"],
        "additionalProperties": False,
    },
    {
        "title": "ImageRow",
        **_strings(
            "external_id",
            "subject_id",
            "label",
            image="Base64 of PNG or JPEG bytes; in a multipart rows upload, the file name "
            "of one of its images parts.",
        ),
    },
]
_ROWS = {"type": "array", "items": {"oneOf": ROW_SHAPES}}
_BINARY = {"type": "string", "format": "binary"}
RECORDS_REQUEST: dict[str, Any] = {
    "application/json": {
        "oneOf": [
            _ROWS,
            {
                "type": "object",
                "properties": {"records": _ROWS},
                "required": ["records"],
                "additionalProperties": False,
            },
        ]
    },
    "text/csv": {
        "type": "string",
        "description": "A header naming the task's columns, then one row per line; "
        "a generation dataset's columns are external_id, subject_id, prompt, response.",
    },
    "multipart/form-data": {
        "type": "object",
        "description": 'Either "file" (a .csv, .jsonl, .ndjson or .json file of rows), or, '
        'for an image_classification dataset, "rows" and "images": each row\'s "image" is '
        'the file name of one "images" part (docs/tasks.md).',
        "properties": {
            "file": _BINARY,
            "rows": {"type": "string", "description": "The rows, as JSON (or a file of rows)."},
            "images": {"type": "array", "items": _BINARY},
        },
        "additionalProperties": False,
    },
}


class RejectedRowSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "RejectedRow"

    index = serializers.IntegerField(help_text="Position of the row in the request, from 0.")
    field = serializers.CharField(allow_null=True, help_text="The field at fault, if one.")
    error = serializers.CharField()


class RecordUpsertApi(APIView):
    """Bulk upsert as JSON, JSONL or CSV (raw body or a multipart ``file``), or image rows
    with their files (multipart ``rows`` and ``images``)."""

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
        description='Rows as a JSON list or {"records": [...]}, as JSON Lines '
        "(application/x-ndjson, application/jsonl, application/json-lines: one row per "
        "line), as CSV, or as a multipart upload. Each task's row shape is one of the "
        "oneOf items; docs/tasks.md has the rules.",
        request=RECORDS_REQUEST,
        responses={200: OutputSerializer, **error_responses(400, 404, 413, 415, *SIGNED_IN)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        # Only datasets in the caller's scope (an integration account's own or granted).
        dataset = get_object_or_404(datasets_visible(request.user), pk=dataset_id)
        body = ingest_from_request(request, task=dataset.task)
        valid, errors = validate_rows(
            body.rows,
            labels=dataset.labels,
            max_rows=settings.LETHE_MAX_BATCH_ROWS,
            task=dataset.task,
            files=body.files,
        )
        result = records_upsert(actor=request.user, dataset=dataset, rows=valid)
        rejected = sorted([e.as_dict() for e in errors] + result.rejected, key=_index)
        counts = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": rejected,
        }
        return Response(self.OutputSerializer(counts).data)


def _index(row: dict[str, Any]) -> int:
    return int(row["index"])
