"""``datasets/``: create a dataset (its name, task and label set), read one back, and the
privacy officer's grants of a dataset to integration accounts.

A dataset out of the caller's scope (``selectors.datasets.datasets_visible``) is a 404, as
one that does not exist: an integration account cannot learn which other datasets exist."""

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
from governance.models import Dataset
from governance.permissions import Action, allowed
from governance.selectors.datasets import datasets_visible
from governance.services.datasets import dataset_create
from governance.services.grants import dataset_grant_create, dataset_grant_delete, grant_user
from governance.services.record_rows import TASKS


class DatasetOutput(serializers.ModelSerializer[Dataset]):
    task = NamedChoiceField(TASKS, enum_name="DatasetTask", help_text="What a record holds.")

    class Meta:
        model = Dataset
        fields = ("id", "name", "task", "labels", "created_at")


class DatasetCreateApi(APIView):
    permission_classes = (allowed(Action.DATASET_WRITE),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "DatasetCreateInput"

        name = StrictCharField(max_length=200)
        task = NamedChoiceField(
            TASKS,
            enum_name="DatasetTask",
            required=False,
            default="classification",
            help_text="What a record holds (docs/tasks.md); classification by default.",
        )
        labels = serializers.ListField(
            child=StrictCharField(max_length=200),
            required=False,
            default=list,
            max_length=1000,
            help_text="Ordered class labels, at least two: required for classification and "
            "image_classification, absent or empty for generation.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: DatasetOutput, **error_responses(400, 409, *SIGNED_IN)},
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        dataset = dataset_create(
            actor=request.user, name=data["name"], labels=data["labels"], task=data["task"]
        )
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    permission_classes = (allowed(Action.CATALOG_READ),)

    @extend_schema(responses={200: DatasetOutput, **error_responses(404, *SIGNED_IN)})
    def get(self, request: Request, dataset_id: int) -> Response:
        # Out of the caller's scope reads as absent: a 404 tells nothing about other datasets.
        dataset = get_object_or_404(datasets_visible(request.user), pk=dataset_id)
        return Response(DatasetOutput(dataset).data)


class DatasetGrantSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "DatasetGrant"

    user = serializers.CharField(source="user.username", help_text="The account granted.")
    granted_at = serializers.DateTimeField()


class DatasetGrantListCreateApi(APIView):
    """A privacy officer's grants: which integration accounts reach this dataset besides
    its owner (``governance.selectors.datasets``)."""

    permission_classes = (allowed(Action.DATASET_GRANT),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "DatasetGrantInput"

        user = StrictCharField(max_length=150, help_text="The integration account's username.")

    @extend_schema(
        responses={200: DatasetGrantSerializer(many=True), **error_responses(404, *SIGNED_IN)}
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(datasets_visible(request.user), pk=dataset_id)
        grants = dataset.grants.select_related("user").order_by("granted_at", "pk")
        return Response(DatasetGrantSerializer(grants, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: DatasetGrantSerializer, **error_responses(400, 404, 409, *SIGNED_IN)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(datasets_visible(request.user), pk=dataset_id)
        data = validated(self.InputSerializer, request.data)
        grant = dataset_grant_create(
            actor=request.user, dataset=dataset, user=grant_user(data["user"])
        )
        return Response(DatasetGrantSerializer(grant).data, status=status.HTTP_201_CREATED)


class DatasetGrantDeleteApi(APIView):
    permission_classes = (allowed(Action.DATASET_GRANT),)

    @extend_schema(responses={204: None, **error_responses(400, 404, *SIGNED_IN)})
    def delete(self, request: Request, dataset_id: int, username: str) -> Response:
        dataset = get_object_or_404(datasets_visible(request.user), pk=dataset_id)
        # The path's name gets the body's checks (length, no NUL): a 400 naming ``user``.
        name = validated(DatasetGrantListCreateApi.InputSerializer, {"user": username})["user"]
        dataset_grant_delete(actor=request.user, dataset=dataset, user=grant_user(name))
        return Response(status=status.HTTP_204_NO_CONTENT)
