"""``models/``: create an S3T model, read its status, train it and predict with it."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
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
from governance.api.model_inputs import (
    MAX_BASE64,
    PREDICT_PARSERS,
    TASKS,
    field_missing,
    prediction_images,
)
from governance.errors import ApplicationError
from governance.models import Dataset, TrainingJob, UnlearningModel
from governance.permissions import Action, allowed
from governance.selectors.models import model_detail
from governance.services.serving import model_predict, task_require
from governance.services.training import ModelSpec, model_create, model_train


class ModelPlanSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ModelPlan"

    shards = serializers.IntegerField()
    slices = serializers.IntegerField()
    sequences = serializers.IntegerField(help_text="Sequences per shard (the budget B).")
    sequence_policy = serializers.ChoiceField(choices=UnlearningModel.Policy.values)
    precision = serializers.ChoiceField(choices=UnlearningModel.Precision.values)
    stage_epochs = serializers.ChoiceField(choices=UnlearningModel.StageEpochs.values)
    lora_targets = serializers.ListField(
        child=serializers.CharField(),
        help_text="Modules inside each block that get LoRA; empty: the backbone's classic ones.",
    )


class ModelProgressSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ModelProgress"

    job = serializers.IntegerField()
    status = NamedChoiceField(TrainingJob.Status.values, enum_name="TrainingJobStatus")
    stages_done = serializers.IntegerField()
    stages_total = serializers.IntegerField()
    current_loss = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class ModelShardSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ModelShard"

    index = serializers.IntegerField()
    serving_sequence = serializers.IntegerField(allow_null=True)
    depth = serializers.IntegerField(help_text="Serving depth: layer groups in use, 0 = none.")
    deleted_slices = serializers.ListField(child=serializers.IntegerField())
    deletions_left = serializers.FloatField(help_text="Expected erasures before a retrain.")


class ModelOutput(serializers.Serializer[Any]):
    class Meta:
        ref_name = "Model"

    id = serializers.IntegerField()
    name = serializers.CharField()
    dataset = serializers.IntegerField()
    base_model = serializers.CharField()
    task = NamedChoiceField(TASKS, enum_name="Task", help_text="The dataset's task.")
    status = NamedChoiceField(UnlearningModel.Status.values, enum_name="ModelStatus")
    generation = serializers.IntegerField()
    plan = ModelPlanSerializer()
    progress = ModelProgressSerializer(allow_null=True, help_text="The latest training job.")
    manifest_version = serializers.IntegerField(allow_null=True)
    shards = ModelShardSerializer(many=True)


def model_body(model: UnlearningModel) -> dict[str, Any]:
    """``ModelOutput`` for ``model``: its plan, latest job and per-shard serving state."""
    detail = model_detail(model=model)
    job = detail["job"]
    return {
        "id": model.pk,
        "name": model.name,
        "dataset": model.dataset_id,
        "base_model": model.base_model,
        "task": model.dataset.task,
        "status": model.status,
        "generation": model.generation,
        "plan": {
            "shards": model.num_shards,
            "slices": model.num_slices,
            "sequences": model.budget,
            "sequence_policy": model.sequence_policy,
            "precision": model.precision,
            "stage_epochs": model.stage_epochs,
            "lora_targets": list(model.lora_targets),
        },
        "progress": None if job is None else _progress(job),
        "manifest_version": detail["manifest_version"],
        "shards": detail["shards"],
    }


def _progress(job: TrainingJob) -> dict[str, Any]:
    return {
        "job": job.pk,
        "status": job.status,
        "stages_done": job.stages_done,
        "stages_total": job.stages_total,
        "current_loss": job.current_loss,
        "error": job.error or None,
    }


class LoraSerializer(StrictSerializer):
    class Meta:
        ref_name = "LoraInput"

    rank = serializers.IntegerField(min_value=1, max_value=256, default=8)
    alpha = serializers.IntegerField(min_value=1, max_value=1024, default=16)
    targets = serializers.ListField(
        child=StrictCharField(max_length=100),
        required=False,
        min_length=1,
        max_length=16,
        help_text=(
            "Module names inside each block that get LoRA (e.g. q_proj, v_proj). Default: "
            "the attention and MLP projections for generation, the attention query and "
            "value for classification."
        ),
    )


class ModelCreateApi(APIView):
    permission_classes = (allowed(Action.MODEL_WRITE),)

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
        # Nested, so the document shows its fields (and refuses unknown ones) as the API does.
        lora = LoraSerializer(required=False)
        epochs = serializers.IntegerField(min_value=1, max_value=100, default=2)
        stage_epochs = serializers.ChoiceField(
            choices=UnlearningModel.StageEpochs.values,
            default=UnlearningModel.StageEpochs.SCALED,
            help_text="fixed: every stage runs `epochs`; scaled: stage i of L runs "
            "ceil(epochs * L / i), so early stages, which see fewer slices, get more passes.",
        )
        learning_rate = serializers.FloatField(min_value=1e-7, max_value=1.0, default=1e-3)
        batch_size = serializers.IntegerField(min_value=1, max_value=1024, default=32)
        precision = serializers.ChoiceField(
            choices=UnlearningModel.Precision.values,
            default="fp32",
            help_text="Training arithmetic: fp32, or bf16/fp16 autocast (fp16 needs CUDA).",
        )
        seed = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
        retrain_threshold = serializers.IntegerField(min_value=1, default=1)
        slice_priors = serializers.ListField(
            child=serializers.FloatField(min_value=0.0), required=False
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: ModelOutput, **error_responses(400, 409, *SIGNED_IN)},
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        lora = data.pop("lora", None) or validated(LoraSerializer, {})
        dataset = Dataset.objects.filter(pk=data.pop("dataset")).first()
        if dataset is None:
            raise ApplicationError(
                code="invalid",
                message="dataset: no such dataset",
                details={"dataset": ["does not exist"]},
            )
        spec = ModelSpec(
            dataset=dataset,
            lora_rank=lora["rank"],
            lora_alpha=lora["alpha"],
            lora_targets=lora.get("targets"),
            **data,
        )
        model = model_create(actor=request.user, spec=spec)
        return Response(ModelOutput(model_body(model)).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    permission_classes = (allowed(Action.MODEL_READ),)

    @extend_schema(responses={200: ModelOutput, **error_responses(404, *SIGNED_IN)})
    def get(self, request: Request, model_id: int) -> Response:
        model = get_object_or_404(UnlearningModel, pk=model_id)
        return Response(ModelOutput(model_body(model)).data)


class ModelTrainApi(APIView):
    permission_classes = (allowed(Action.MODEL_WRITE),)

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "ModelTrainOutput"

        job = serializers.IntegerField()
        status = NamedChoiceField(TrainingJob.Status.values, enum_name="TrainingJobStatus")
        generation = serializers.IntegerField(help_text="The generation this job trains.")
        stages_total = serializers.IntegerField()

    @extend_schema(
        request=None, responses={202: OutputSerializer, **error_responses(404, 409, *SIGNED_IN)}
    )
    def post(self, request: Request, model_id: int) -> Response:
        job = model_train(actor=request.user, model=get_object_or_404(UnlearningModel, pk=model_id))
        body = {
            "job": job.pk,
            "status": job.status,
            "generation": job.generation,
            "stages_total": job.stages_total,
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class PredictionSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "Prediction"

    # DRF's metaclass takes declared fields off the class, so "label" shadows nothing.
    label = serializers.CharField()  # type: ignore[assignment]
    scores = serializers.DictField(
        child=serializers.FloatField(), help_text="Probability of each label."
    )


class ModelPredictApi(APIView):
    permission_classes = (allowed(Action.MODEL_PREDICT),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "PredictInput"

        inputs = serializers.ListField(
            child=StrictCharField(max_length=20000, trim_whitespace=False),
            min_length=1,
            max_length=256,
            required=False,
            help_text="Texts, for a classification model.",
        )
        images = serializers.ListField(
            child=StrictCharField(max_length=MAX_BASE64, trim_whitespace=False),
            min_length=1,
            max_length=64,
            required=False,
            help_text=(
                "Base64 PNG or JPEG images, for an image classifier (or send them as "
                "multipart/form-data file parts named images)."
            ),
        )

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "PredictOutput"

        predictions = PredictionSerializer(many=True, help_text="One per input, in order.")
        manifest_version = serializers.IntegerField(help_text="The manifest that answered.")

    parser_classes = PREDICT_PARSERS

    @extend_schema(
        request={
            "application/json": InputSerializer,
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "images": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
                "required": ["images"],
                "additionalProperties": False,
            },
        },
        responses={200: OutputSerializer, **error_responses(400, 404, 409, 413, *SIGNED_IN)},
    )
    def post(self, request: Request, model_id: int) -> Response:
        model = get_object_or_404(UnlearningModel.objects.select_related("dataset"), pk=model_id)
        if model.dataset.task == "image_classification":
            result = model_predict(model=model, inputs=prediction_images(request))
        else:
            data = validated(self.InputSerializer, request.data)
            task_require(model, "classification", use="ask models/{id}/generate/")
            if "images" in data:  # never silently ignored: the caller meant something
                raise ApplicationError(
                    code="invalid",
                    message="images: a text classifier takes inputs (texts), not images",
                    details={"images": ["only for image classification models"]},
                )
            if "inputs" not in data:
                raise field_missing("inputs", "texts to classify")
            result = model_predict(model=model, inputs=data["inputs"])
        body = {
            "predictions": [{"label": p.label, "scores": p.scores} for p in result.predictions],
            "manifest_version": result.manifest_version,
        }
        return Response(self.OutputSerializer(body).data)
