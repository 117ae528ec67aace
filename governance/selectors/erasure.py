"""Reads: erasure requests, who may see which, and their deadline state.

Visibility (one rule): privacy officers and auditors see every request; an integration
account sees the requests it filed. "Overdue" is defined once, on the model
(``ErasureRequest.is_overdue`` and ``ErasureRequestQuerySet.overdue``); the helpers here
are the only callers the API, the pages, the dashboard and the reports need. The pages
add one window on top of that rule: an open request that is not overdue is due ``SOON``
when its deadline is less than a week away (``erasure_request_due`` and its SQL twin
``erasure_requests_due``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db.models import Q

from governance.models import ErasureRequest, ErasureRequestQuerySet
from governance.permissions import Action, user_can

SOON = timedelta(days=7)


class Due(StrEnum):
    """A request's deadline state as the pages show it."""

    CLOSED = "closed"
    OVERDUE = "overdue"
    SOON = "soon"
    OK = "ok"


def erasure_requests_visible(user: Any) -> ErasureRequestQuerySet:
    """The requests ``user`` may read: all of them with ``Action.ERASURE_READ_ALL``."""
    requests = ErasureRequest.objects.select_related("filed_by", "approved_by")
    if user_can(user, Action.ERASURE_READ_ALL):
        return requests
    return requests.filter(filed_by=getattr(user, "pk", None))


def erasure_requests_by_overdue(
    requests: ErasureRequestQuerySet, *, overdue: bool, now: datetime
) -> ErasureRequestQuerySet:
    """Keep the overdue requests (``overdue=True``) or every other one."""
    return requests.overdue(now) if overdue else requests.not_overdue(now)


def erasure_requests_open_by_deadline() -> ErasureRequestQuerySet:
    """Open requests, most urgent first (the dashboard and the deadline lists)."""
    return (
        ErasureRequest.objects.open()
        .with_deadline()
        .select_related("filed_by")
        .order_by("deadline_at", "pk")
    )


def erasure_request_due(request: ErasureRequest, *, now: datetime) -> Due:
    """Overdue (the model's rule), closed, due within ``SOON``, or ok."""
    if request.is_overdue(now):  # a completed one too, while a recipient has to confirm
        return Due.OVERDUE
    if not request.is_open:
        return Due.CLOSED
    return Due.SOON if request.deadline - now < SOON else Due.OK


def erasure_requests_due(
    requests: ErasureRequestQuerySet, *, due: Due, now: datetime
) -> ErasureRequestQuerySet:
    """The requests ``erasure_request_due`` puts in ``due`` at ``now``, as one query."""
    if due is Due.CLOSED:
        return requests.filter(status__in=ErasureRequest.CLOSED).not_overdue(now)
    if due is Due.OVERDUE:
        return requests.overdue(now)
    upcoming = requests.open().not_overdue(now).with_deadline()
    soon = Q(deadline_at__lt=now + SOON)
    return upcoming.filter(soon) if due is Due.SOON else upcoming.exclude(soon)
