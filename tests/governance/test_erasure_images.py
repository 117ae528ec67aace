"""Erasing a subject of an image or generation dataset: the content is wiped, the image
objects are deleted from the artifact store (every version) before the certificate is
signed, the certificate says how many, and the claim check asks the store again.

Whether bytes are gone is asked of the store (a HEAD, a listing, the bucket's versions),
never of the record rows: on the file system (the default) and on a real S3 server.
"""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from governance.artifacts import artifact_objects
from governance.certificates.claims import certificate_claims_check
from governance.certificates.signing import certificate_verify
from governance.models import DeletionCertificate, ErasureRequest, Record
from governance.services import erasure, erasure_execution
from tests.governance import web_helpers
from tests.governance.api_helpers import API

artifacts = web_helpers.artifacts
LABELS = ["cat", "dog"]


def png(seed):
    out = io.BytesIO()
    Image.new("RGB", (6, 5), (seed % 256, 40, 90)).save(out, format="PNG")
    return out.getvalue()


def image_dataset(client, images_by_subject):
    """An image dataset with one record per (subject, image); returns its id."""
    response = client.post(
        f"{API}/datasets/",
        {"name": f"img-{uuid.uuid4().hex[:6]}", "task": "image_classification", "labels": LABELS},
        format="json",
    )
    assert response.status_code == 201, response.content
    dataset_id = response.json()["id"]
    rows = [
        {
            "external_id": f"{subject}-{n}",
            "subject_id": subject,
            "label": "cat",
            "image": base64.b64encode(data).decode(),
        }
        for subject, images in images_by_subject.items()
        for n, data in enumerate(images)
    ]
    body = client.post(f"{API}/datasets/{dataset_id}/records/", rows, format="json").json()
    assert (body["created"], body["rejected"]) == (len(rows), [])
    return dataset_id


def erase(officer, subject, capture):
    """File, approve and execute an erasure for ``subject``; returns the request id."""
    request, _ = erasure.erasure_request_create(actor=officer.user, subject_ref=subject)
    with capture(execute=False):
        erasure.erasure_request_approve(actor=officer.user, request=request)
    erasure_execution.erasure_request_execute(request_id=request.pk)
    return request.pk


def keys_of(subject):
    return list(
        Record.objects.filter(subject__external_ref=subject).values_list("image_key", flat=True)
    )


def left_in_store(keys):
    """What the store still holds of ``keys``: objects and versions."""
    objects = artifact_objects()
    return [k for k in keys if objects.exists(k)] + [
        f"{k}@{v['VersionId']}" for k in keys for v in objects.versions(k)
    ]


def certificate_of(request_id):
    return DeletionCertificate.objects.get(request=request_id).envelope


def claim(envelope, name):
    (found,) = [c for c in certificate_claims_check(envelope) if c["claim"] == name]
    return found


def check_erasure_deletes_images(officer, integration, capture):
    same = png(1)  # the same bytes for alice and bob: separate objects, bob's must stay
    image_dataset(integration.client, {"alice": [same, png(2)], "bob": [same]})
    alice, bob = keys_of("alice"), keys_of("bob")
    assert len(alice) == 2
    assert all(alice)
    assert all(artifact_objects().exists(key) for key in alice + bob)

    request_id = erase(officer, "alice", capture)

    assert ErasureRequest.objects.get(pk=request_id).status == "completed"
    assert left_in_store(alice) == []
    assert all(artifact_objects().exists(key) for key in bob)
    for record in Record.objects.filter(subject__external_ref="alice"):
        assert (record.status, record.label, record.image_digest) == ("erased", "", "")
        assert record.image_key in alice  # the key stays, naming what was deleted
    envelope = certificate_of(request_id)
    assert certificate_verify(envelope).ok
    assert envelope["certificate"]["image_objects_deleted"] == 2
    assert all(c["ok"] for c in certificate_claims_check(envelope)), certificate_claims_check(
        envelope
    )
    return envelope, alice


def test_erasing_an_image_subject_deletes_its_bytes_and_certifies_it(
    officer, integration, artifacts, django_capture_on_commit_callbacks
):
    envelope, alice = check_erasure_deletes_images(
        officer, integration, django_capture_on_commit_callbacks
    )

    assert not any((Path(settings.ARTIFACT_ROOT) / key).exists() for key in alice)
    # The claim asks the store: bytes put back under one of the keys are found.
    artifact_objects().put(alice[0], b"restored from a backup")
    found = claim(envelope, "image_objects_deleted")
    assert not found["ok"]
    assert alice[0] in found["detail"]


def test_a_certificate_claiming_more_deleted_images_than_existed_fails(
    officer, integration, artifacts, django_capture_on_commit_callbacks
):
    envelope, _ = check_erasure_deletes_images(
        officer, integration, django_capture_on_commit_callbacks
    )
    envelope["certificate"]["image_objects_deleted"] = 3

    assert not claim(envelope, "image_objects_deleted")["ok"]


def test_no_certificate_while_image_bytes_remain_and_a_retry_finishes(
    officer, integration, artifacts, monkeypatch, django_capture_on_commit_callbacks
):
    image_dataset(integration.client, {"alice": [png(3)]})
    (key,) = keys_of("alice")
    request, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="alice")
    with django_capture_on_commit_callbacks(execute=False):
        erasure.erasure_request_approve(actor=officer.user, request=request)

    with monkeypatch.context() as patch:
        patch.setattr(erasure_execution, "images_delete", lambda keys: [])  # a lost delete
        with pytest.raises(RuntimeError, match="image bytes left"):
            erasure_execution.erasure_request_execute(request_id=request.pk)
    assert ErasureRequest.objects.get(pk=request.pk).status == "executing"
    assert not DeletionCertificate.objects.exists()
    assert artifact_objects().exists(key)

    assert erasure_execution.erasure_request_execute(request_id=request.pk) == "completed"

    assert left_in_store([key]) == []
    assert certificate_of(request.pk)["certificate"]["image_objects_deleted"] == 1


def test_erasing_a_generation_subject_wipes_prompt_response_and_turns(
    officer, integration, artifacts, django_capture_on_commit_callbacks
):
    dataset_id = integration.client.post(
        f"{API}/datasets/", {"name": "chat", "task": "generation"}, format="json"
    ).json()["id"]
    rows = [
        {"external_id": "p", "subject_id": "carol", "prompt": "Hi", "response": "Hello"},
        {
            "external_id": "m",
            "subject_id": "carol",
            "messages": [
                {"role": "user", "content": "My address is 1 Main St"},
                {"role": "assistant", "content": "Noted."},
            ],
        },
    ]
    integration.client.post(f"{API}/datasets/{dataset_id}/records/", rows, format="json")

    request_id = erase(officer, "carol", django_capture_on_commit_callbacks)

    wiped = set(Record.objects.values_list("status", "text", "response", "messages"))
    assert wiped == {("erased", "", "", None)}
    envelope = certificate_of(request_id)
    assert envelope["certificate"]["image_objects_deleted"] == 0
    assert all(c["ok"] for c in certificate_claims_check(envelope))


@pytest.mark.parametrize("s3_artifacts", ["versioned", "plain"], indirect=True)
def test_erasure_deletes_image_bytes_and_versions_on_s3(
    officer, integration, s3_artifacts, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    envelope, alice = check_erasure_deletes_images(
        officer, integration, django_capture_on_commit_callbacks
    )

    client = s3_artifacts.client()
    for key in alice:
        listed = client.list_object_versions(
            Bucket=s3_artifacts.bucket, Prefix=s3_artifacts.bucket_key(key)
        )
        assert not listed.get("Versions"), listed
        assert not listed.get("DeleteMarkers"), listed
    # A version left behind (a delete that only stacked a marker) is found by the claim.
    client.put_object(Bucket=s3_artifacts.bucket, Key=s3_artifacts.bucket_key(alice[1]), Body=b"x")
    assert not claim(envelope, "image_objects_deleted")["ok"]
