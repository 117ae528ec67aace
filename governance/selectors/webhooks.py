"""Reads: which webhook subscriptions an account may see and change; confirmations.

Every account with ``Action.WEBHOOK_READ`` sees its own subscriptions; auditors
(``Action.WEBHOOK_READ_ALL``) see everyone's. Changes are for the owner only
(``webhooks_owned``). Another account's subscription is a 404, as its token is.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from governance.models import ErasureConfirmation, ErasureRequest, WebhookSubscription
from governance.permissions import Action, user_can


def webhooks_visible(user: Any) -> QuerySet[WebhookSubscription]:
    """The subscriptions ``user`` may read, oldest first."""
    subscriptions = WebhookSubscription.objects.select_related("owner").order_by("pk")
    if user_can(user, Action.WEBHOOK_READ_ALL):
        return subscriptions
    return webhooks_owned(user)


def webhooks_owned(user: Any) -> QuerySet[WebhookSubscription]:
    """The subscriptions ``user`` may change: its own."""
    user_id = getattr(user, "pk", None)
    subscriptions = WebhookSubscription.objects.select_related("owner").order_by("pk")
    return subscriptions.filter(owner_id=user_id) if user_id is not None else subscriptions.none()


def erasure_requests_confirmable(
    user: Any, visible: QuerySet[ErasureRequest]
) -> QuerySet[ErasureRequest]:
    """``visible`` (the requests ``user`` may read) and those it was asked to confirm."""
    asked = ErasureConfirmation.objects.filter(owner_id=getattr(user, "pk", None))
    return ErasureRequest.objects.filter(
        Q(pk__in=visible.values("pk")) | Q(pk__in=asked.values("request_id"))
    )


def erasure_confirmations(request: ErasureRequest) -> list[ErasureConfirmation]:
    """The request's recipients that must confirm, in the order they were told."""
    return list(request.confirmations.select_related("owner").order_by("pk"))
