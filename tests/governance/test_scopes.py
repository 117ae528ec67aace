"""Integration accounts are scoped to the datasets they created or were granted: writes,
reads and lineage alike (``governance.selectors.datasets``); other roles are not."""

from __future__ import annotations

import io

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from governance.models import AuditEvent, Dataset, DatasetGrant
from governance.permissions import Role
from governance.services.accounts import user_create_with_role
from governance.services.datasets import dataset_create
from tests.governance.api_helpers import API, create_dataset, error_of
from tests.personas import sample_rows

pytestmark = pytest.mark.django_db

# The data backfill of the migration that added owners (imported by module path: the name
# starts with a digit).
owners_from_audit = __import__(
    "governance.migrations.0008_tokens_dataset_scope", fromlist=["owners_from_audit"]
).owners_from_audit


@pytest.fixture
def other(db):
    """A second integration account (another team's data platform)."""
    user, key = user_create_with_role(username="otto-bot", role=Role.INTEGRATION)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.user = user
    return client


@pytest.fixture
def owned(integration, sample):
    """A dataset ingrid-bot created, with the sample's train split."""
    return create_dataset(integration.client, sample, name="ingrid-data")


def rows_of(sample, n=3):
    return sample_rows(sample.train[:n])


def lineage(client, subject):
    return client.get(f"{API}/subjects/{subject}/lineage/")


def grant(officer, dataset_id, username):
    return officer.client.post(
        f"{API}/datasets/{dataset_id}/grants/", {"user": username}, format="json"
    )


def test_the_creator_owns_its_dataset(integration, owned):
    assert Dataset.objects.get(pk=owned).owner == integration.user


def test_another_integration_account_cannot_see_or_write_the_dataset(other, owned, sample):
    subject = sample.train[0].subject_id

    error_of(other.get(f"{API}/datasets/{owned}/"), 404, "not_found")
    error_of(
        other.post(f"{API}/datasets/{owned}/records/", rows_of(sample), format="json"),
        404,
        "not_found",
    )
    error_of(lineage(other, subject), 404, "not_found", names="subject_id")
    # The answers are those for a dataset that does not exist: nothing to tell them apart.
    missing = other.get(f"{API}/datasets/999999/").json()
    assert other.get(f"{API}/datasets/{owned}/").json() == missing


def test_the_owner_and_the_other_roles_are_unchanged(
    integration, officer, auditor, engineer, owned, sample
):
    subject = sample.train[0].subject_id
    assert integration.client.get(f"{API}/datasets/{owned}/").status_code == 200
    assert lineage(integration.client, subject).status_code == 200
    for persona in (officer, auditor, engineer):
        assert persona.client.get(f"{API}/datasets/{owned}/").status_code == 200
    for persona in (officer, auditor):
        assert lineage(persona.client, subject).status_code == 200
    response = engineer.client.post(
        f"{API}/datasets/{owned}/records/", rows_of(sample), format="json"
    )
    assert response.status_code == 200, response.content


def test_a_grant_opens_the_dataset_and_withdrawing_it_closes_it(officer, other, owned, sample):
    subject = sample.train[0].subject_id

    response = grant(officer, owned, "otto-bot")

    assert response.status_code == 201, response.content
    assert response.json()["user"] == "otto-bot"
    assert other.get(f"{API}/datasets/{owned}/").status_code == 200
    response = other.post(f"{API}/datasets/{owned}/records/", rows_of(sample), format="json")
    assert response.status_code == 200, response.content
    assert lineage(other, subject).status_code == 200
    listed = officer.client.get(f"{API}/datasets/{owned}/grants/").json()
    assert [g["user"] for g in listed] == ["otto-bot"]

    response = officer.client.delete(f"{API}/datasets/{owned}/grants/otto-bot/")

    assert response.status_code == 204, response.content
    error_of(other.get(f"{API}/datasets/{owned}/"), 404, "not_found")
    events = AuditEvent.objects.filter(object_type="dataset", object_id=str(owned))
    granted = events.get(action="dataset.granted")
    withdrawn = events.get(action="dataset.grant_withdrawn")
    assert (granted.actor, granted.payload["user"]) == ("user:olivia", "otto-bot")
    assert withdrawn.payload == {"user": "otto-bot"}


def test_lineage_shows_only_the_datasets_in_scope(officer, other, integration, owned, sample):
    """One subject with records in two datasets: each account sees its own dataset's."""
    record = sample.train[0]
    theirs = create_dataset(other, sample, name="otto-data", records=[record])

    body = lineage(other, record.subject_id).json()

    assert {r["dataset"] for r in body["records"]} == {theirs}
    assert {r["dataset"] for r in lineage(integration.client, record.subject_id).json()[
        "records"]} == {owned}  # fmt: skip
    everything = lineage(officer.client, record.subject_id).json()
    assert {r["dataset"] for r in everything["records"]} == {owned, theirs}


def test_only_officers_grant(integration, auditor, engineer, other, owned):
    for persona in (integration, auditor, engineer):
        error_of(grant(persona, owned, "otto-bot"), 403, "permission_denied")
    assert not DatasetGrant.objects.exists()


def test_bad_grants_name_the_user(officer, auditor, integration, owned):
    error_of(grant(officer, owned, "nobody"), 400, "invalid", names="user")
    error_of(grant(officer, owned, "arthur"), 400, "invalid", names="user")  # sees all
    error_of(grant(officer, owned, "ingrid-bot"), 409, "conflict", names="user")  # owner
    error_of(officer.client.delete(f"{API}/datasets/{owned}/grants/ingrid-bot/"), 404,
             "not_found", names="user")  # fmt: skip
    error_of(officer.client.delete(f"{API}/datasets/{owned}/grants/a%00b/"), 400, "invalid", "user")
    error_of(
        officer.client.post(f"{API}/datasets/{owned}/grants/", {"usr": "x"}, format="json"),
        400,
        "invalid",
    )
    assert not AuditEvent.objects.filter(action__startswith="dataset.grant").exists()


def test_a_second_grant_is_a_conflict(officer, other, owned):
    assert grant(officer, owned, "otto-bot").status_code == 201
    error_of(grant(officer, owned, "otto-bot"), 409, "conflict", names="user")
    assert DatasetGrant.objects.count() == 1


def test_grant_command_adds_lists_and_removes(other, owned):
    out = io.StringIO()
    call_command("lethe_grant", "add", "ingrid-data", "otto-bot", stdout=out)
    assert other.get(f"{API}/datasets/{owned}/").status_code == 200
    out = io.StringIO()
    call_command("lethe_grant", "list", str(owned), stdout=out)
    assert "ingrid-data\totto-bot" in out.getvalue()

    call_command("lethe_grant", "remove", str(owned), "otto-bot", stdout=io.StringIO())

    assert other.get(f"{API}/datasets/{owned}/").status_code == 404
    actors = set(
        AuditEvent.objects.filter(action__startswith="dataset.grant").values_list(
            "actor", flat=True
        )
    )
    assert actors == {"manage.py lethe_grant"}
    with pytest.raises(CommandError, match="no dataset"):
        call_command("lethe_grant", "add", "nope", "otto-bot")


def test_the_admin_grants_through_the_service(other, owned):
    admin = User.objects.create_superuser("root", password="x-unused-1")
    browser = Client()
    browser.force_login(admin)

    response = browser.post(
        "/admin/governance/datasetgrant/add/", {"dataset": owned, "user": other.user.pk}
    )

    assert response.status_code == 302, response.content
    assert other.get(f"{API}/datasets/{owned}/").status_code == 200
    assert AuditEvent.objects.get(action="dataset.granted").actor == "user:root"
    response = browser.post(
        "/admin/governance/datasetgrant/add/", {"dataset": owned, "user": other.user.pk}
    )
    assert response.status_code == 200  # the form again, with the reason
    assert "already granted" in response.content.decode()


def test_the_migration_backfills_owners_from_the_trail(integration):
    dataset = dataset_create(actor=integration.user, name="old", labels=["a", "b"])
    system = dataset_create(actor="system:import", name="older", labels=["a", "b"])
    Dataset.objects.update(owner=None)

    owners_from_audit(apps, None)

    assert Dataset.objects.get(pk=dataset.pk).owner == integration.user
    assert Dataset.objects.get(pk=system.pk).owner is None
