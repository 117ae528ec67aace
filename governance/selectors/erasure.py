"""Reads: erasure requests, who may see which, and their deadline state.

Visibility (one rule): privacy officers and auditors see every request; an integration
account sees the requests it filed. "Overdue" is defined once, on the model
(``ErasureRequest.is_overdue`` and ``ErasureRequestQuerySet.overdue``); the helpers here
are the only callers the API, the pages, the dashboard and the reports need.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from governance.models import ErasureRequest, ErasureRequestQuerySet
from governance.permissions import Action, user_can


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
