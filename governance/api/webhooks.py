"""``webhooks/``: subscriptions, their secret, a test event, the delivery log, redelivery.

Privacy officers and integration accounts manage their own subscriptions; auditors read
everyone's (``selectors.webhooks``). The signing secret is in the creation and rotation
answers only. Events, signatures and retries: docs/webhooks.md.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    DbIntegerField,
    NamedChoiceField,
    StrictCharField,
    StrictSerializer,
    error_responses,
    validated,
)
from governance.models import WebhookDelivery, WebhookSubscription
from governance.permissions import Action, allowed
from governance.selectors.webhooks import webhooks_owned, webhooks_visible
from governance.services import webhooks

CHANGE_ERRORS = error_responses(400, 404, *SIGNED_IN)


class WebhookSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "Webhook"

    id = serializers.IntegerField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField(), help_text='Or ["*"].')
    description = serializers.CharField(allow_blank=True)
    active = serializers.BooleanField()
    requires_confirmation = serializers.BooleanField()
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    disabled_reason = serializers.CharField(
        allow_blank=True, help_text="Why Lethe disabled it (deliveries failing for days)."
    )


class WebhookCreatedSerializer(WebhookSerializer):
    class Meta:
        ref_name = "WebhookCreated"

    secret = serializers.CharField(help_text="whsec_<base64>: shown in this answer only.")


class WebhookPageSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "WebhookPage"

    count = serializers.IntegerField()
    results = WebhookSerializer(many=True)


class SecretSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "WebhookSecret"

    secret = serializers.CharField(help_text="The new secret: shown in this answer only.")
    previous_secret_valid_until = serializers.DateTimeField(
        help_text="Until then deliveries carry a second signature, by the old secret."
    )


class DeliverySerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "WebhookDelivery"

    id = serializers.IntegerField()
    event_id = serializers.CharField(help_text="The webhook-id header.")
    event_type = serializers.CharField()
    status = NamedChoiceField(WebhookDelivery.Status.values, enum_name="WebhookDeliveryStatus")
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class QueuedSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "WebhookQueued"

    event_id = serializers.CharField()
    delivery_id = serializers.IntegerField()


def webhook_fields(subscription: WebhookSubscription) -> dict[str, Any]:
    """What ``WebhookSerializer`` renders (never the secret)."""
    return {
        "id": subscription.pk,
        "url": subscription.url,
        "event_types": subscription.event_types,
        "description": subscription.description,
        "active": subscription.active,
        "requires_confirmation": subscription.requires_confirmation,
        "owner": subscription.owner.get_username(),
        "created_at": subscription.created_at,
        "disabled_reason": subscription.disabled_reason,
    }


def delivery_fields(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "event_id": delivery.event.event_id,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_code": delivery.response_code,
        "latency_ms": delivery.latency_ms,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


def _readable(request: Request, webhook_id: int) -> WebhookSubscription:
    return get_object_or_404(webhooks_visible(request.user), pk=webhook_id)


def _owned(request: Request, webhook_id: int) -> WebhookSubscription:
    """404 for a subscription the caller does not own (an auditor reads, never changes)."""
    return get_object_or_404(webhooks_owned(request.user), pk=webhook_id)


def _read_or_manage(view: APIView) -> list[BasePermission]:
    action = Action.WEBHOOK_READ if view.request.method == "GET" else Action.WEBHOOK_MANAGE
    return [allowed(action)()]


class _Fields(StrictSerializer):
    url = StrictCharField(max_length=2000)
    event_types = serializers.ListField(
        child=StrictCharField(max_length=64), min_length=1, max_length=50
    )
    description = StrictCharField(max_length=500, required=False, default="", allow_blank=True)
    active = serializers.BooleanField(required=False, default=True)
    requires_confirmation = serializers.BooleanField(required=False, default=False)


class WebhookListCreateApi(APIView):
    class InputSerializer(_Fields):
        class Meta:
            ref_name = "WebhookCreateInput"

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "WebhookFilter"

        limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
        offset = DbIntegerField(min_value=0, default=0)

    def get_permissions(self) -> list[BasePermission]:
        return _read_or_manage(self)

    @extend_schema(
        operation_id="webhooks_list",
        parameters=[FilterSerializer],
        responses={200: WebhookPageSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params.dict())
        subscriptions = webhooks_visible(request.user)
        page = subscriptions[filters["offset"] : filters["offset"] + filters["limit"]]
        body = {"count": subscriptions.count(), "results": [webhook_fields(s) for s in page]}
        return Response(WebhookPageSerializer(body).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: WebhookCreatedSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        subscription = webhooks.webhook_create(actor=request.user, **data)
        body = {**webhook_fields(subscription), "secret": subscription.secret}
        return Response(WebhookCreatedSerializer(body).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    class PatchSerializer(_Fields):
        class Meta:
            ref_name = "WebhookPatchInput"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for field in self.fields.values():
                field.required = False
                field.default = serializers.empty

    def get_permissions(self) -> list[BasePermission]:
        return _read_or_manage(self)

    @extend_schema(responses={200: WebhookSerializer, **error_responses(404, *SIGNED_IN)})
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(WebhookSerializer(webhook_fields(_readable(request, webhook_id))).data)

    @extend_schema(request=PatchSerializer, responses={200: WebhookSerializer, **CHANGE_ERRORS})
    def patch(self, request: Request, webhook_id: int) -> Response:
        subscription = _owned(request, webhook_id)
        data = validated(self.PatchSerializer, request.data)
        subscription = webhooks.webhook_update(
            actor=request.user, subscription=subscription, changes=data
        )
        return Response(WebhookSerializer(webhook_fields(subscription)).data)

    @extend_schema(responses={204: None, **error_responses(404, *SIGNED_IN)})
    def delete(self, request: Request, webhook_id: int) -> Response:
        webhooks.webhook_delete(actor=request.user, subscription=_owned(request, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretApi(APIView):
    permission_classes = (allowed(Action.WEBHOOK_MANAGE),)

    @extend_schema(
        request=None, responses={200: SecretSerializer, **error_responses(404, *SIGNED_IN)}
    )
    def post(self, request: Request, webhook_id: int) -> Response:
        subscription = webhooks.webhook_secret_rotate(
            actor=request.user, subscription=_owned(request, webhook_id)
        )
        body = {
            "secret": subscription.secret,
            "previous_secret_valid_until": subscription.previous_secret_valid_until,
        }
        return Response(SecretSerializer(body).data)


class WebhookTestApi(APIView):
    permission_classes = (allowed(Action.WEBHOOK_MANAGE),)

    @extend_schema(
        request=None, responses={202: QueuedSerializer, **error_responses(404, *SIGNED_IN)}
    )
    def post(self, request: Request, webhook_id: int) -> Response:
        subscription = _owned(request, webhook_id)
        event = webhooks.webhook_test_send(actor=request.user, subscription=subscription)
        delivery = event.deliveries.get(subscription=subscription)
        body = {"event_id": event.event_id, "delivery_id": delivery.pk}
        return Response(QueuedSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(APIView):
    permission_classes = (allowed(Action.WEBHOOK_READ),)

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "WebhookDeliveryFilter"

        status = serializers.ChoiceField(choices=WebhookDelivery.Status.values, required=False)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
        offset = DbIntegerField(min_value=0, default=0)

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        parameters=[FilterSerializer],
        responses={200: DeliverySerializer(many=True), **error_responses(400, 404, *SIGNED_IN)},
    )
    def get(self, request: Request, webhook_id: int) -> Response:
        subscription = _readable(request, webhook_id)
        filters = validated(self.FilterSerializer, request.query_params.dict())
        deliveries = subscription.deliveries.select_related("event").order_by("-created_at", "-pk")
        if "status" in filters:
            deliveries = deliveries.filter(status=filters["status"])
        page = deliveries[filters["offset"] : filters["offset"] + filters["limit"]]
        return Response(DeliverySerializer([delivery_fields(d) for d in page], many=True).data)


class WebhookRedeliverApi(APIView):
    permission_classes = (allowed(Action.WEBHOOK_MANAGE),)

    @extend_schema(
        request=None, responses={202: QueuedSerializer, **error_responses(404, *SIGNED_IN)}
    )
    def post(self, request: Request, webhook_id: int, delivery_id: int) -> Response:
        subscription = _owned(request, webhook_id)
        delivery = get_object_or_404(
            WebhookDelivery.objects.select_related("event"),
            subscription=subscription,
            pk=delivery_id,
        )
        delivery = webhooks.webhook_redeliver(actor=request.user, delivery=delivery)
        body = {"event_id": delivery.event.event_id, "delivery_id": delivery.pk}
        return Response(QueuedSerializer(body).data, status=status.HTTP_202_ACCEPTED)
