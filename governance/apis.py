"""REST API v1 views: one APIView per action, nested Input/Output serializers (STYLE §3.3).

Each view parses, checks the role, calls one service or selector and renders. Errors of
every kind come out as ``{"error": {"code", "message", "details"}}`` (governance.errors).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.ingest import INGEST_PARSER_CLASSES, rows_from_request, validate_rows
from governance.auth import roles
from governance.errors import ApplicationError
from governance.models import Dataset, UnlearningModel
from governance.permissions import Role
from governance.selectors.audit import audit_event_list
from governance.selectors.lineage import subject_lineage
from governance.selectors.models import model_detail
from governance.services.datasets import dataset_create, records_upsert
from governance.services.serving import model_predict
from governance.services.training import ModelSpec, model_create, model_train

READERS = roles(Role.PRIVACY_OFFICER, Role.AUDITOR, Role.INTEGRATION, Role.ML_ENGINEER)
INGESTERS = roles(Role.INTEGRATION, Role.ML_ENGINEER)
ENGINEERS = roles(Role.ML_ENGINEER)
LINEAGE_READERS = roles(Role.PRIVACY_OFFICER, Role.AUDITOR, Role.INTEGRATION)
PREDICTORS = roles(Role.ML_ENGINEER, Role.INTEGRATION)


class StrictSerializer(serializers.Serializer[Any]):
    """Rejects fields it does not declare, naming them (a typo must not pass silently)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers, which DRF's CharField turns into text silently."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class HealthApi(APIView):
    """Liveness and database reachability, for load balancers and the demo's startup wait."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class OutputSerializer(serializers.Serializer[dict[str, str]]):
        class Meta:
            ref_name = "HealthOutput"

        status = serializers.ChoiceField(choices=["ok", "error"])
        database = serializers.CharField(help_text="Database vendor: sqlite or postgresql.")

    @extend_schema(responses={200: OutputSerializer, 503: OutputSerializer})
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            body = {"status": "error", "database": connection.vendor}
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ok", "database": connection.vendor})


class DatasetOutput(serializers.ModelSerializer[Dataset]):
    class Meta:
        model = Dataset
        fields = ("id", "name", "labels", "created_at")


class DatasetCreateApi(APIView):
    permission_classes = (INGESTERS,)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "DatasetCreateInput"

        name = StrictCharField(max_length=200)
        labels = serializers.ListField(
            child=StrictCharField(max_length=200), min_length=2, max_length=1000
        )

    @extend_schema(request=InputSerializer, responses={201: DatasetOutput})
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request.data)
        dataset = dataset_create(actor=request.user, name=data["name"], labels=data["labels"])
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    permission_classes = (READERS,)

    @extend_schema(responses={200: DatasetOutput})
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetOutput(get_object_or_404(Dataset, pk=dataset_id)).data)


class RecordUpsertApi(APIView):
    """Bulk upsert as JSON, JSONL or CSV (raw body or a multipart ``file``)."""

    permission_classes = (INGESTERS,)
    parser_classes = INGEST_PARSER_CLASSES

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "RecordUpsertOutput"

        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        unchanged = serializers.IntegerField()
        rejected = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={200: OutputSerializer},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        rows = rows_from_request(request)
        valid, errors = validate_rows(
            rows, labels=dataset.labels, max_rows=settings.LETHE_MAX_BATCH_ROWS
        )
        result = records_upsert(actor=request.user, dataset=dataset, rows=valid)
        rejected: list[dict[str, Any]] = [
            {"index": e.index, "field": e.field, "error": e.error} for e in errors
        ]
        rejected = sorted(rejected + result.rejected, key=lambda r: int(r["index"]))
        body = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": rejected,
        }
        return Response(body)


class SubjectLineageApi(APIView):
    permission_classes = (LINEAGE_READERS,)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, subject_id: str) -> Response:
        lineage = subject_lineage(subject_ref=subject_id)
        if not lineage["records"]:
            raise ApplicationError(
                code="not_found",
                status=404,
                message=f"subject_id: no records for subject {subject_id!r}",
            )
        return Response(lineage)


class ModelCreateApi(APIView):
    permission_classes = (ENGINEERS,)

    class LoraSerializer(StrictSerializer):
        class Meta:
            ref_name = "LoraInput"

        rank = serializers.IntegerField(min_value=1, max_value=256, default=8)
        alpha = serializers.IntegerField(min_value=1, max_value=1024, default=16)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ModelCreateInput"

        name = StrictCharField(max_length=200)
        dataset = serializers.IntegerField()
        base_model = StrictCharField(max_length=500, default="minilm")
        shards = serializers.IntegerField(min_value=1, max_value=64)
        slices = serializers.IntegerField(min_value=1, max_value=16)
        sequences = serializers.IntegerField(min_value=1, max_value=1000)
        sequence_policy = serializers.ChoiceField(choices=UnlearningModel.Policy.values)
        lora = serializers.DictField(required=False)
        epochs = serializers.IntegerField(min_value=1, max_value=100, default=2)
        learning_rate = serializers.FloatField(min_value=1e-7, max_value=1.0, default=1e-3)
        batch_size = serializers.IntegerField(min_value=1, max_value=1024, default=32)
        seed = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
        retrain_threshold = serializers.IntegerField(min_value=1, default=1)
        slice_priors = serializers.ListField(
            child=serializers.FloatField(min_value=0.0), required=False
        )

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request.data)
        lora = _valid(self.LoraSerializer, data.pop("lora", {}), prefix="lora")
        dataset = Dataset.objects.filter(pk=data.pop("dataset")).first()
        if dataset is None:
            raise ApplicationError(
                code="invalid",
                message="dataset: no such dataset",
                details={"dataset": ["does not exist"]},
            )
        spec = ModelSpec(dataset=dataset, lora_rank=lora["rank"], lora_alpha=lora["alpha"], **data)
        model = model_create(actor=request.user, spec=spec)
        return Response(_model_body(model), status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    permission_classes = (READERS,)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, model_id: int) -> Response:
        return Response(_model_body(get_object_or_404(UnlearningModel, pk=model_id)))


class ModelTrainApi(APIView):
    permission_classes = (ENGINEERS,)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, model_id: int) -> Response:
        job = model_train(actor=request.user, model=get_object_or_404(UnlearningModel, pk=model_id))
        body = {
            "job": job.pk,
            "status": job.status,
            "generation": job.generation,
            "stages_total": job.stages_total,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class ModelPredictApi(APIView):
    permission_classes = (PREDICTORS,)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "PredictInput"

        inputs = serializers.ListField(
            child=StrictCharField(max_length=20000, trim_whitespace=False),
            min_length=1,
            max_length=256,
        )

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, model_id: int) -> Response:
        model = get_object_or_404(UnlearningModel.objects.select_related("dataset"), pk=model_id)
        data = _valid(self.InputSerializer, request.data)
        result = model_predict(model=model, inputs=data["inputs"])
        return Response(
            {
                "predictions": [{"label": p.label, "scores": p.scores} for p in result.predictions],
                "manifest_version": result.manifest_version,
            }
        )


def _valid(
    serializer_class: type[serializers.Serializer[Any]], data: Any, prefix: str = ""
) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        errors = serializer.errors
        raise serializers.ValidationError(
            {f"{prefix}.{k}" if prefix else k: v for k, v in errors.items()}
        )
    return dict(serializer.validated_data)


def _model_body(model: UnlearningModel) -> dict[str, Any]:
    detail = model_detail(model=model)
    job = detail["job"]
    return {
        "id": model.pk,
        "name": model.name,
        "dataset": model.dataset_id,
        "base_model": model.base_model,
        "status": model.status,
        "generation": model.generation,
        "plan": {
            "shards": model.num_shards,
            "slices": model.num_slices,
            "sequences": model.budget,
            "sequence_policy": model.sequence_policy,
        },
        "progress": None
        if job is None
        else {
            "job": job.pk,
            "status": job.status,
            "stages_done": job.stages_done,
            "stages_total": job.stages_total,
            "current_loss": job.current_loss,
            "error": job.error or None,
        },
        "manifest_version": detail["manifest_version"],
        "shards": detail["shards"],
    }


AUDIT_READERS = roles(Role.PRIVACY_OFFICER, Role.AUDITOR)


class AuditEventListApi(APIView):
    """The audit trail in chain order, filtered, paged by sequence number (keyset)."""

    permission_classes = (AUDIT_READERS,)

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "AuditEventFilter"

        after_seq = serializers.IntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
        action = serializers.CharField(max_length=100, required=False)
        actor = serializers.CharField(max_length=200, required=False)
        object_type = serializers.CharField(max_length=100, required=False)
        object_id = serializers.CharField(max_length=100, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        filters = _valid(self.FilterSerializer, request.query_params.dict())
        events = audit_event_list(**filters)
        last = events[-1].seq if len(events) == filters["limit"] else None
        return Response(
            {
                "results": [
                    {
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
                    for e in events
                ],
                "next_after_seq": last,
            }
        )


class AuditVerifyApi(APIView):
    """Re-hash the whole chain now and report the first bad event, if any."""

    permission_classes = (AUDIT_READERS,)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        from governance.services.audit import audit_chain_verify

        report = audit_chain_verify()
        return Response(
            {
                "ok": report.ok,
                "checked": report.checked,
                "head": report.head,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason or None,
            }
        )
