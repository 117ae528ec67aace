"""Reads: which datasets an account may reach. The one home of the dataset scope rule.

Officers, auditors and ML engineers reach every dataset (``Action.DATASET_READ_ALL``). An
integration account reaches the datasets it created (``Dataset.owner``) and those a
privacy officer granted it (``DatasetGrant``): it writes records only there (the records
API looks the dataset up in ``datasets_visible`` and then checks ``Action.DATASET_WRITE``),
and sees those datasets and their lineage only, as it sees only the erasure requests it filed
(``selectors.erasure.erasure_requests_visible``). The API answers 404 for a dataset out of
scope, as for one that does not exist, so an account cannot probe which datasets exist.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from governance.models import Dataset
from governance.permissions import Action, user_can


def datasets_visible(user: Any) -> QuerySet[Dataset]:
    """The datasets ``user`` may read: all of them with ``Action.DATASET_READ_ALL``."""
    if user_can(user, Action.DATASET_READ_ALL):
        return Dataset.objects.all()
    user_id = getattr(user, "pk", None)
    if user_id is None:
        return Dataset.objects.none()
    # A subquery, not a join: a join on grants would repeat a dataset once per grant.
    granted = Dataset.objects.filter(grants__user_id=user_id).values("pk")
    return Dataset.objects.filter(Q(owner_id=user_id) | Q(pk__in=granted))
