"""Writes: dataset grants, the second half of an integration account's scope.

An integration account reaches the datasets it created and those granted to it here
(``governance.selectors.datasets``). Grants are given and withdrawn by privacy officers
(API) or an operator (``manage.py lethe_grant``), each with its audit event.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from governance.errors import ApplicationError
from governance.models import Dataset, DatasetGrant
from governance.permissions import Action, user_can
from governance.services.audit import audit_event_append


def grant_user(username: str) -> User:
    """The account named ``username``; a 400 naming the field when there is none."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ApplicationError(
            code="invalid",
            message=f"user: no account named {username!r}",
            details={"user": ["does not exist"]},
        )
    return user


def dataset_grant_problem(*, dataset: Dataset, user: User) -> ApplicationError | None:
    """Why ``user`` cannot be granted ``dataset``, or None (the admin's form asks it too)."""
    if user_can(user, Action.DATASET_READ_ALL):
        return ApplicationError(
            code="invalid",
            message=f"user: {user.username!r} already reaches every dataset; grants are for "
            "integration accounts",
            details={"user": ["reaches every dataset"]},
        )
    if dataset.owner_id == user.pk:
        return _exists(f"user: {user.username!r} owns dataset {dataset.pk}")
    if DatasetGrant.objects.filter(dataset=dataset, user=user).exists():
        return _exists(f"user: {user.username!r} was already granted dataset {dataset.pk}")
    return None


def dataset_grant_create(*, actor: Any, dataset: Dataset, user: User) -> DatasetGrant:
    """Let ``user`` write to and read the lineage of ``dataset``; 409 if it already may."""
    problem = dataset_grant_problem(dataset=dataset, user=user)
    if problem is not None:
        raise problem
    try:
        with transaction.atomic():
            grant = DatasetGrant.objects.create(dataset=dataset, user=user)
            audit_event_append(
                actor=actor,
                action="dataset.granted",
                obj=dataset,
                payload={"user": user.username, "grant": grant.pk},
            )
    except IntegrityError:
        # Lost a race with the same grant made concurrently.
        raise _exists(f"user: {user.username!r} was already granted dataset {dataset.pk}") from None
    return grant


def dataset_grant_delete(*, actor: Any, dataset: Dataset, user: User) -> None:
    """Withdraw ``user``'s grant on ``dataset`` (its own datasets cannot be withdrawn)."""
    with transaction.atomic():
        deleted, _ = DatasetGrant.objects.filter(dataset=dataset, user=user).delete()
        if not deleted:
            raise ApplicationError(
                code="not_found",
                status=404,
                message=f"user: {user.username!r} holds no grant on dataset {dataset.pk}",
            )
        audit_event_append(
            actor=actor,
            action="dataset.grant_withdrawn",
            obj=dataset,
            payload={"user": user.username},
        )


def _exists(message: str) -> ApplicationError:
    return ApplicationError(code="conflict", status=409, message=message)
