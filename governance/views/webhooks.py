"""Webhook pages: the subscriptions list and its create form (the secret shown once), one
subscription's delivery log with redeliver, rotate and test buttons.

Officers manage their own subscriptions (``webhook_manage``); auditors read everyone's
(``webhook_read_all``). Integration accounts use the API (``Channel.WEB`` drops them).
A new secret is rendered into the answer to the POST that made it, never into a message
or a redirect, so it is shown once and stored nowhere but the database.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from governance.errors import ApplicationError
from governance.models import WebhookDelivery, WebhookSubscription
from governance.permissions import Action, Channel, user_can
from governance.selectors.webhooks import webhooks_owned, webhooks_visible
from governance.services import webhooks
from governance.views.access import POST, page, render_page

DELIVERIES_SHOWN = 100


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="https://, or http:// to a host in LETHE_WEBHOOK_ALLOWED_HOSTS.",
        error_messages={"required": "Enter the URL that receives the events."},
    )
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[("*", "Every event"), *[(t, t) for t in webhooks.EVENT_TYPES]],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )
    description = forms.CharField(label="Description (optional)", max_length=500, required=False)
    requires_confirmation = forms.BooleanField(
        label="Recipient must confirm every completed erasure (GDPR Art. 19)", required=False
    )


def _can_manage(request: HttpRequest) -> bool:
    return user_can(request.user, Action.WEBHOOK_MANAGE, Channel.WEB)


def _list_page(
    request: HttpRequest, form: WebhookForm, created: WebhookSubscription | None = None
) -> HttpResponse:
    context = {
        "subscriptions": list(webhooks_visible(request.user)),
        "form": form if _can_manage(request) else None,
        "created": created,
    }
    return render_page(request, "lethe/webhooks/list.html", context, section="webhooks")


@page(Action.WEBHOOK_READ)
def webhook_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, WebhookForm())


@page(Action.WEBHOOK_MANAGE, methods=POST)
def webhook_create(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form)
    try:
        created = webhooks.webhook_create(
            actor=request.user,
            url=form.cleaned_data["url"],
            event_types=form.cleaned_data["event_types"],
            description=form.cleaned_data["description"],
            requires_confirmation=form.cleaned_data["requires_confirmation"],
        )
    except ApplicationError as exc:
        form.add_error("url", exc.message.removeprefix("url: "))
        return _list_page(request, form)
    return _list_page(request, WebhookForm(), created=created)


def _detail_page(
    request: HttpRequest, subscription: WebhookSubscription, secret: str | None = None
) -> HttpResponse:
    deliveries = subscription.deliveries.select_related("event").order_by("-created_at", "-pk")
    context: dict[str, Any] = {
        "subscription": subscription,
        "deliveries": list(deliveries[:DELIVERIES_SHOWN]),
        "mine": subscription.owner_id == request.user.pk and _can_manage(request),
        "secret": secret,
    }
    return render_page(request, "lethe/webhooks/detail.html", context, section="webhooks")


@page(Action.WEBHOOK_READ)
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, get_object_or_404(webhooks_visible(request.user), pk=pk))


def _owned(request: HttpRequest, pk: int) -> WebhookSubscription:
    return get_object_or_404(webhooks_owned(request.user), pk=pk)


@page(Action.WEBHOOK_MANAGE, methods=POST)
def webhook_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = webhooks.webhook_secret_rotate(
        actor=request.user, subscription=_owned(request, pk)
    )
    return _detail_page(request, subscription, secret=subscription.secret)


@page(Action.WEBHOOK_MANAGE, methods=POST)
def webhook_test(request: HttpRequest, pk: int) -> HttpResponse:
    webhooks.webhook_test_send(actor=request.user, subscription=_owned(request, pk))
    messages.success(request, "A webhook.test event is on its way.")
    return redirect("web-webhook", pk=pk)


@page(Action.WEBHOOK_MANAGE, methods=POST)
def webhook_redeliver(request: HttpRequest, pk: int, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(
        WebhookDelivery.objects.select_related("event"),
        subscription=_owned(request, pk),
        pk=delivery_id,
    )
    webhooks.webhook_redeliver(actor=request.user, delivery=delivery)
    messages.success(request, f"Delivery {delivery.pk} queued again.")
    return redirect("web-webhook", pk=pk)


@page(Action.WEBHOOK_MANAGE, methods=POST)
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    webhooks.webhook_delete(actor=request.user, subscription=_owned(request, pk))
    messages.success(request, "Subscription deleted.")
    return redirect("web-webhooks")
