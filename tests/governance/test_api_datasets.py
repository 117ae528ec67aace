"""POST datasets/ and GET datasets/{id}/ through the real URLconf, personas and tokens."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from governance.models import AuditEvent, Dataset
from tests.governance.api_helpers import API, PERSONAS, error_of

URL = f"{API}/datasets/"
LABELS = ["billing", "bug", "praise"]


def create(client, body, **kwargs):
    return client.post(URL, body, format="json", **kwargs)


# --- create -------------------------------------------------------------------------------


def test_create_answers_201_with_the_dataset(integration):
    response = create(integration.client, {"name": "support", "labels": LABELS})

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "task", "labels", "created_at"}
    dataset = Dataset.objects.get()
    assert (body["id"], body["name"], body["labels"]) == (dataset.pk, "support", LABELS)
    assert dataset.labels == LABELS  # order kept: label i is class i
    assert AuditEvent.objects.filter(action="dataset.created").count() == 1


def test_duplicate_name_is_409_and_keeps_the_first(integration, engineer):
    assert create(integration.client, {"name": "support", "labels": LABELS}).status_code == 201

    # Surrounding blanks are trimmed, so this is the same name.
    response = create(engineer.client, {"name": "  support ", "labels": ["x", "y"]})

    error = error_of(response, 409, "conflict", names="name")
    assert "support" in error["message"]
    assert list(Dataset.objects.values_list("name", "labels")) == [("support", LABELS)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"labels": LABELS}, "name"),
        ({"name": "", "labels": LABELS}, "name"),
        ({"name": "   ", "labels": LABELS}, "name"),
        ({"name": "x" * 201, "labels": LABELS}, "name"),
        ({"name": 7, "labels": LABELS}, "name"),
        ({"name": "support"}, "labels"),
        ({"name": "support", "labels": "billing,bug"}, "labels"),
        ({"name": "support", "labels": ["only"]}, "labels"),
        ({"name": "support", "labels": ["bug", "bug"]}, "labels"),
        ({"name": "support", "labels": ["bug", " bug "]}, "labels"),
        ({"name": "support", "labels": ["bug", ""]}, "labels"),
        ({"name": "support", "labels": ["bug", None]}, "labels"),
        ({"name": "support", "labels": [1, 2]}, "labels"),
        ({"name": "support", "labels": LABELS, "colour": "red"}, "colour"),
        ({"name": "support", "label": LABELS}, "label"),  # a typo is not silently dropped
    ],
)
def test_invalid_create_is_400_naming_the_field(integration, body, field):
    response = create(integration.client, body)

    error = error_of(response, 400, "invalid")
    assert error["message"].split(":")[0].split(".")[0] == field, error["message"]
    assert field in error["details"]
    assert not Dataset.objects.exists()


def test_body_that_is_not_an_object_is_400(integration):
    error_of(create(integration.client, [{"name": "support", "labels": LABELS}]), 400, "invalid")
    assert not Dataset.objects.exists()


def test_malformed_json_is_400_and_creates_nothing(integration):
    response = integration.client.post(
        URL, data='{"name": "support", "labels": ["a", "b"],}', content_type="application/json"
    )

    error = error_of(response, 400, "parse_error")
    assert "JSON" in error["message"]
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("name,labels\nsupport,a\n", "text/csv"),
        ("name=support&labels=a&labels=b", "application/x-www-form-urlencoded"),
        ('{"name": "support", "labels": ["a", "b"]}', "text/plain"),
    ],
)
def test_wrong_content_type_is_415(integration, data, content_type):
    response = integration.client.post(URL, data=data, content_type=content_type)

    error = error_of(response, 415, "unsupported_media_type")
    assert content_type in error["message"]
    assert not Dataset.objects.exists()


# --- detail -------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_role_reads_a_dataset(request, integration, persona):
    dataset_id = create(integration.client, {"name": "support", "labels": LABELS}).json()["id"]
    client = request.getfixturevalue(persona).client

    response = client.get(f"{URL}{dataset_id}/")

    assert response.status_code == 200, response.content
    assert response.json()["id"] == dataset_id
    assert response.json()["labels"] == LABELS


@pytest.mark.parametrize("dataset_id", ["999999", str(2**63), str(10**30)])
def test_unknown_dataset_is_404_in_the_error_shape(auditor, dataset_id):
    error_of(auditor.client.get(f"{URL}{dataset_id}/"), 404, "not_found")


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "allowed"),
    [("integration", True), ("engineer", True), ("officer", False), ("auditor", False)],
)
def test_only_ingesters_create_datasets(request, persona, allowed):
    client = request.getfixturevalue(persona).client

    response = create(client, {"name": "support", "labels": LABELS})

    if allowed:
        assert response.status_code == 201, response.content
        assert Dataset.objects.count() == 1
    else:
        error = error_of(response, 403, "permission_denied")
        assert "integration" in error["message"]
        assert "ml_engineer" in error["message"]
        assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"), [("post", ""), ("get", "1/")], ids=["create", "detail"]
)
@pytest.mark.parametrize("token", [None, "Token not-a-real-key"], ids=["no-token", "bad-token"])
def test_unauthenticated_requests_are_401(db, method, path, token):
    Dataset.objects.create(pk=1, name="existing", labels=LABELS)
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=token)

    response = getattr(client, method)(
        f"{URL}{path}", {"name": "support", "labels": LABELS}, format="json"
    )

    code = "not_authenticated" if token is None else "authentication_failed"
    error_of(response, 401, code)
    assert response["WWW-Authenticate"] == "Token"
    assert list(Dataset.objects.values_list("name", flat=True)) == ["existing"]
