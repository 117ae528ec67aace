"""GET subjects/{subject_id}/lineage/ through the real URLconf: which shard, slice and
stages read each of a subject's records, checked against the database's own rows."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from governance.models import ServingManifest, SliceAssignment, Stage, UnlearningModel
from tests.governance.api_helpers import (
    API,
    PERSONAS,
    create_dataset,
    error_of,
    run_training_inline,
    tiny_model,
)


def url(subject_id):
    return f"{API}/subjects/{subject_id}/lineage/"


@pytest.fixture
def dataset_id(integration, sample):
    return create_dataset(integration.client, sample)


@pytest.fixture
def subject(sample):
    """The sample subject with the most training records."""
    counts = {}
    for record in sample.train:
        counts[record.subject_id] = counts.get(record.subject_id, 0) + 1
    return max(counts, key=lambda s: (counts[s], s))


@pytest.mark.parametrize("subject_id", ["nobody", "subj-9999", "%20"])
def test_unknown_subject_is_404_naming_it(officer, dataset_id, subject_id):
    error = error_of(officer.client.get(url(subject_id)), 404, "not_found", names="subject_id")
    assert subject_id.replace("%20", " ") in error["message"]


def test_records_without_a_trained_model(officer, dataset_id, subject, sample):
    body = officer.client.get(url(subject)).json()

    mine = sorted(r.external_id for r in sample.train if r.subject_id == subject)
    assert body["subject_id"] == subject
    assert [r["external_id"] for r in body["records"]] == mine
    assert {(r["dataset"], r["status"], r["erased_at"]) for r in body["records"]} == {
        (dataset_id, "active", None)
    }
    assert body["models"] == []


def test_lineage_after_training_matches_the_assignments(
    officer, engineer, integration, dataset_id, subject, sample, settings, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    model_id = engineer.client.post(f"{API}/models/", tiny_model(dataset_id), format="json").json()[
        "id"
    ]
    untrained = engineer.client.post(
        f"{API}/models/", tiny_model(dataset_id, name="never-trained"), format="json"
    ).json()["id"]
    with django_capture_on_commit_callbacks(execute=False):
        job = engineer.client.post(f"{API}/models/{model_id}/train/").json()["job"]
    run_training_inline(job)
    # A record of the same subject that arrives after training is not in any stage yet.
    late = {"external_id": "late-1", "subject_id": subject, "text": "Where is my refund?",
            "label": sample.labels[0]}  # fmt: skip
    upsert = integration.client.post(f"{API}/datasets/{dataset_id}/records/", [late], format="json")
    assert upsert.json()["created"] == 1

    response = officer.client.get(url(subject))

    assert response.status_code == 200, response.content
    body = response.json()
    mine = sorted(r.external_id for r in sample.train if r.subject_id == subject)
    assert [r["external_id"] for r in body["records"]] == sorted([*mine, "late-1"])
    assert [m["model"] for m in body["models"]] == [model_id]  # generation 0 has no lineage
    lineage = body["models"][0]
    model = UnlearningModel.objects.get(pk=model_id)
    assert lineage["model"] != untrained
    assert (lineage["name"], lineage["generation"], lineage["manifest_version"]) == ("tiny", 1, 1)
    assert lineage["not_yet_trained"] == ["late-1"]
    manifest = ServingManifest.objects.get(model=model)
    serving = {s["id"] for e in manifest.entries for s in e["stages"]}

    assert [r["external_id"] for r in lineage["records"]] == mine
    for row in lineage["records"]:
        assignment = SliceAssignment.objects.select_related("slice__shard").get(
            record__external_id=row["external_id"], model=model, generation=1
        )
        assert (row["shard"], row["slice"]) == (
            assignment.slice.shard.index,
            assignment.slice.index,
        )
        stages = Stage.objects.filter(slices=assignment.slice).order_by("position", "prefix")
        assert row["stages"] == [
            {
                "id": s.pk,
                "prefix": s.prefix,
                "position": s.position,
                "state": "trained",
                "serving": s.pk in serving,
            }
            for s in stages
        ]
        # Every stage whose prefix holds the record's slice, and only those.
        assert {s["prefix"] for s in row["stages"]} == {
            p for p in Stage.objects.filter(shard=assignment.slice.shard).values_list(
                "prefix", flat=True
            ) if str(assignment.slice.index) in p.split("-")
        }  # fmt: skip
        assert any(s["serving"] for s in row["stages"])
    # All of a subject's records share one slice.
    assert len({(r["shard"], r["slice"]) for r in lineage["records"]}) == 1


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_officers_auditors_and_integrations_read_lineage(request, dataset_id, subject, persona):
    response = request.getfixturevalue(persona).client.get(url(subject))

    if persona == "engineer":
        error = error_of(response, 403, "permission_denied")
        assert "privacy_officer" in error["message"]
        assert "auditor" in error["message"]
    else:
        assert response.status_code == 200, response.content
        assert response.json()["subject_id"] == subject


@pytest.mark.parametrize("token", [None, "Token not-a-real-key"], ids=["no-token", "bad-token"])
def test_unauthenticated_lineage_is_401(dataset_id, subject, token):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=token)

    error = error_of(
        client.get(url(subject)),
        401,
        "not_authenticated" if token is None else "authentication_failed",
    )
    assert subject not in str(error)  # nothing about the subject leaks before the check


def test_subject_ids_with_slashes_are_looked_up(officer, integration, dataset_id):
    row = {
        "external_id": "slash-1",
        "subject_id": "crm/eu/42",
        "text": "refund please",
        "label": "billing",
    }
    response = integration.client.post(
        f"{API}/datasets/{dataset_id}/records/", [row], format="json"
    )
    assert response.json()["created"] == 1
    body = officer.client.get(url("crm/eu/42")).json()
    assert [r["external_id"] for r in body["records"]] == ["slash-1"]
    assert body["subject_id"] == "crm/eu/42"


def test_the_body_is_what_the_documented_serializer_renders(officer, integration, dataset_id):
    """The view builds its body directly (rendering through nested serializers doubled the
    request's time); it must be exactly what ``OutputSerializer`` would render."""
    from django.utils import timezone

    from governance.api.lineage import SubjectLineageApi, lineage_body
    from governance.models import Record
    from governance.selectors.lineage import subject_lineage

    rows = [
        {"external_id": f"same-{n}", "subject_id": "same-person", "text": "hi", "label": "billing"}
        for n in range(2)
    ]
    integration.client.post(f"{API}/datasets/{dataset_id}/records/", rows, format="json")
    # One tombstone, so erased_at is a time in one row and null in the other.
    Record.objects.filter(external_id="same-1").update(
        status="erased", erased_at=timezone.now(), text=""
    )
    lineage = subject_lineage(subject_ref="same-person")

    assert lineage_body(lineage) == SubjectLineageApi.OutputSerializer(lineage).data
    assert officer.client.get(url("same-person")).json() == lineage_body(lineage)
