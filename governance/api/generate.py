"""``models/{id}/generate/``: text from a generation model's serving prefixes.

At every decoding step the next-token distribution is the mean of the serving shards'
distributions, each shard at its clean prefix with its own KV cache; greedy decoding at
temperature 0, sampling (temperature, top-p) deterministic for a seed. The answer names
the manifest version that produced it, so an output can be tied to the lineage it used.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import SIGNED_IN, StrictSerializer, error_responses, validated
from governance.api.model_inputs import generation_prompts
from governance.models import UnlearningModel
from governance.permissions import Action, allowed
from governance.services.serving import model_generate, task_require

MAX_PROMPTS = 16
MAX_NEW_TOKENS = 512


class GeneratedSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "Generated"

    text = serializers.CharField(help_text="The generated text (special tokens removed).")
    tokens = serializers.ListField(
        child=serializers.IntegerField(), help_text="The generated token ids."
    )


class ModelGenerateApi(APIView):
    permission_classes = (allowed(Action.MODEL_PREDICT),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "GenerateInput"

        inputs = serializers.ListField(
            child=serializers.JSONField(),
            min_length=1,
            max_length=MAX_PROMPTS,
            help_text="Prompts: strings, or lists of {role, content} turns (chat).",
        )
        max_new_tokens = serializers.IntegerField(min_value=1, max_value=MAX_NEW_TOKENS, default=32)
        temperature = serializers.FloatField(
            min_value=0.0, max_value=5.0, default=0.0, help_text="0: greedy decoding."
        )
        top_p = serializers.FloatField(min_value=0.01, max_value=1.0, default=1.0)
        seed = serializers.IntegerField(
            min_value=0, max_value=2**62, default=0, help_text="Sampling seed."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "GenerateOutput"

        outputs = GeneratedSerializer(many=True, help_text="One per prompt, in order.")
        manifest_version = serializers.IntegerField(help_text="The manifest that answered.")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404, 409, *SIGNED_IN)},
    )
    def post(self, request: Request, model_id: int) -> Response:
        model = get_object_or_404(UnlearningModel.objects.select_related("dataset"), pk=model_id)
        data = validated(self.InputSerializer, request.data)
        task_require(model, "generation", use="ask models/{id}/predict/")
        result = model_generate(
            model=model,
            prompts=generation_prompts(data["inputs"]),
            max_new_tokens=data["max_new_tokens"],
            temperature=data["temperature"],
            top_p=data["top_p"],
            seed=data["seed"],
        )
        body = {"outputs": result.outputs, "manifest_version": result.manifest_version}
        return Response(self.OutputSerializer(body).data)
