"""``manage.py lethe_grant``: grant an integration account a dataset, withdraw it, list grants.

An integration account writes to and reads the lineage of the datasets it created and those
granted here or by a privacy officer through the API (``governance.selectors.datasets``).
A dataset is named by its id or its name. Each change is audited.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.errors import ApplicationError
from governance.models import Dataset, DatasetGrant
from governance.services.grants import dataset_grant_create, dataset_grant_delete, grant_user

ACTOR = "manage.py lethe_grant"


class Command(BaseCommand):
    help = "Grant a dataset to an integration account, withdraw a grant, or list grants."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        for name, text in (("add", "grant a dataset"), ("remove", "withdraw a grant")):
            action = sub.add_parser(name, help=text)
            action.add_argument("dataset", help="id or name")
            action.add_argument("username")
        listing = sub.add_parser("list", help="grants, by dataset")
        listing.add_argument("dataset", nargs="?", help="id or name; default: every dataset")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["command"] == "list":
                self._list(options["dataset"])
                return
            dataset, user = _dataset(options["dataset"]), grant_user(options["username"])
            if options["command"] == "add":
                dataset_grant_create(actor=ACTOR, dataset=dataset, user=user)
                self.stdout.write(f"Granted dataset {dataset.name!r} to {user.username!r}.")
            else:
                dataset_grant_delete(actor=ACTOR, dataset=dataset, user=user)
                self.stdout.write(f"Withdrew {user.username!r}'s grant on {dataset.name!r}.")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _list(self, name: str | None) -> None:
        grants = DatasetGrant.objects.select_related("dataset", "user").order_by(
            "dataset__name", "user__username"
        )
        if name is not None:
            grants = grants.filter(dataset=_dataset(name))
        for grant in grants:
            self.stdout.write(
                f"{grant.dataset.name}\t{grant.user.username}\t{grant.granted_at.isoformat()}"
            )


def _dataset(name: str) -> Dataset:
    found = Dataset.objects.filter(pk=int(name)) if name.isdigit() else Dataset.objects.none()
    dataset = found.first() or Dataset.objects.filter(name=name).first()
    if dataset is None:
        raise CommandError(f"dataset: no dataset with id or name {name!r}")
    return dataset
