"""``datasets/``: create a dataset (its name and label set) and read one back."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    StrictCharField,
    StrictSerializer,
    error_responses,
    validated,
)
from governance.models import Dataset
from governance.permissions import Action, allowed
from governance.services.datasets import dataset_create


class DatasetOutput(serializers.ModelSerializer[Dataset]):
    class Meta:
        model = Dataset
        fields = ("id", "name", "labels", "created_at")


class DatasetCreateApi(APIView):
    permission_classes = (allowed(Action.DATASET_WRITE),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "DatasetCreateInput"

        name = StrictCharField(max_length=200)
        labels = serializers.ListField(
            child=StrictCharField(max_length=200), min_length=2, max_length=1000
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: DatasetOutput, **error_responses(400, 409, *SIGNED_IN)},
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        dataset = dataset_create(actor=request.user, name=data["name"], labels=data["labels"])
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    permission_classes = (allowed(Action.CATALOG_READ),)

    @extend_schema(responses={200: DatasetOutput, **error_responses(404, *SIGNED_IN)})
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetOutput(get_object_or_404(Dataset, pk=dataset_id)).data)
