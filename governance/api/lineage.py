"""``subjects/{subject_id}/lineage/``: which model components learned from this person."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    NamedChoiceField,
    error_responses,
    subject_ref_from_path,
)
from governance.errors import ApplicationError
from governance.models import Record, Stage
from governance.permissions import Action, allowed
from governance.selectors.datasets import datasets_visible
from governance.selectors.lineage import subject_lineage


class LineageStageSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "LineageStage"

    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The slices the stage trained on, in order.")
    position = serializers.IntegerField(help_text="Depth of the stage in its sequence, from 1.")
    state = NamedChoiceField(Stage.State.values, enum_name="StageState")
    serving = serializers.BooleanField(help_text="In the model's current serving manifest.")


class LineageTrainedRecordSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "LineageTrainedRecord"

    external_id = serializers.CharField()
    generation = serializers.IntegerField(
        help_text="The generation that placed it; during a retrain, serving and new both show."
    )
    shard = serializers.IntegerField()
    slice = serializers.IntegerField()
    stages = LineageStageSerializer(many=True, help_text="Every stage that read the slice.")


class LineageModelSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "LineageModel"

    model = serializers.IntegerField()
    name = serializers.CharField()
    generation = serializers.IntegerField()
    manifest_version = serializers.IntegerField(allow_null=True)
    records = LineageTrainedRecordSerializer(many=True)
    not_yet_trained = serializers.ListField(
        child=serializers.CharField(), help_text="External ids no stage has read yet."
    )


class LineageRecordSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "LineageRecord"

    dataset = serializers.IntegerField()
    external_id = serializers.CharField()
    status = NamedChoiceField(Record.Status.values, enum_name="RecordStatus")
    created_at = serializers.DateTimeField()
    erased_at = serializers.DateTimeField(allow_null=True)


class SubjectLineageApi(APIView):
    permission_classes = (allowed(Action.LINEAGE_READ),)

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "SubjectLineage"

        subject_id = serializers.CharField()
        records = LineageRecordSerializer(many=True)
        models = LineageModelSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer, **error_responses(400, 404, *SIGNED_IN)})
    def get(self, request: Request, subject_id: str) -> Response:
        subject_id = subject_ref_from_path(subject_id)
        lineage = subject_lineage(subject_ref=subject_id, datasets=datasets_visible(request.user))
        if not lineage["records"]:
            raise ApplicationError(
                code="not_found",
                status=404,
                message=f"subject_id: no records for subject {subject_id!r}",
            )
        # The selector's answer is already the documented shape, in JSON types but for two
        # times; the serializer documents it, and rendering through it would double the
        # request's time (tests/governance/test_api_lineage.py checks the two agree).
        return Response(lineage_body(lineage))


_TIME = serializers.DateTimeField()


def lineage_body(lineage: dict[str, Any]) -> dict[str, Any]:
    """``SubjectLineageApi.OutputSerializer(lineage).data``, built directly."""
    records = [
        {
            **record,
            "created_at": _TIME.to_representation(record["created_at"]),
            "erased_at": _TIME.to_representation(record["erased_at"])
            if record["erased_at"] is not None
            else None,
        }
        for record in lineage["records"]
    ]
    return {**lineage, "records": records}
