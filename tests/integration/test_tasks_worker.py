"""Generation and image classification through the API with a real worker process.

Each test is the whole flow a data platform and an officer go through: create a dataset
of the task, ingest its records, train on the worker, ask the model, erase a subject and
ask again. The answer after the erasure must name a newer manifest, the erased records
must be tombstones, the certificate's claims must hold, and for images the bytes must be
gone from the storage (asked of the storage, not of the row).
"""

from __future__ import annotations

import base64

import pytest

from governance.certificates.claims import certificate_claims_check
from governance.certificates.signing import certificate_verify
from governance.models import ErasureRequest, Record, Stage
from tests.integration.test_erasure_worker import _serving_lineage_is_clean, _subject_in, _train
from tests.integration.test_worker import Worker, _wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
API = "/api/v1"

INTENTS = {
    "parcel": ("where is my parcel", "it ships today"),
    "refund": ("i want my money back", "refund sent now"),
    "login": ("i cannot sign in", "reset your password"),
    "cancel": ("stop my subscription", "subscription cancelled"),
}


def _generation_rows(subjects: int = 12) -> list[dict[str, str]]:
    rows = []
    for s in range(subjects):
        for i, (prompt, reply) in enumerate(INTENTS.values()):
            rows.append(
                {
                    "external_id": f"g-{s}-{i}",
                    "subject_id": f"person-{s}",
                    "prompt": f"{prompt} please {s}",
                    "response": reply,
                }
            )
    return rows


def _model(engineer, dataset_id: int, name: str, base_model: str) -> int:
    body = {
        "name": name,
        "dataset": dataset_id,
        "base_model": base_model,
        "shards": 2,
        "slices": 2,
        "sequences": 1,
        "sequence_policy": "cyclic",
        "epochs": 1,
        "learning_rate": 0.01,
        "batch_size": 16,
        "seed": 5,
    }
    created = engineer.client.post(f"{API}/models/", body, format="json")
    assert created.status_code == 201, created.json()
    return int(created.json()["id"])


def _erase(integration, officer, subject: str, worker: Worker, key: str) -> int:
    filed = integration.client.post(
        f"{API}/erasure-requests/",
        {"subject_id": subject, "reason": "Art. 17"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert filed.status_code == 201, filed.json()
    req = int(filed.json()["id"])
    approved = officer.client.post(f"{API}/erasure-requests/{req}/approve/", {}, format="json")
    assert approved.status_code == 200, approved.json()
    _wait(
        lambda: ErasureRequest.objects.get(pk=req).status == "completed",
        worker,
        timeout=120,
        what="the erasure to complete",
    )
    return req


def _stages_reading(subject: str) -> set[int]:
    """Every stage whose lineage holds one of the subject's records, asked before erasing."""
    return set(
        Stage.objects.filter(slices__assignments__record__subject__external_ref=subject)
        .distinct()
        .values_list("pk", flat=True)
    )


def _certificate_holds(auditor, req: int, doomed: set[int]) -> dict:
    envelope = auditor.client.get(f"{API}/erasure-requests/{req}/certificate/").json()
    public = auditor.client.get(f"{API}/certificates/public-key/").json()
    assert certificate_verify(envelope, public_key_pem=public["public_key_pem"]).ok
    failed = [c for c in certificate_claims_check(envelope) if not c["ok"]]
    assert not failed, failed
    listed = {s["id"] for m in envelope["certificate"]["models"] for s in m["stages_deactivated"]}
    assert doomed
    assert listed == doomed  # exactly the stages whose lineage held the subject
    return envelope


def test_generation_model_trains_generates_and_forgets(
    engineer, integration, officer, auditor, shared_dirs
):
    dataset = integration.client.post(
        f"{API}/datasets/", {"name": "chats", "task": "generation"}, format="json"
    )
    assert dataset.status_code == 201, dataset.json()
    assert dataset.json()["task"] == "generation"
    ds = dataset.json()["id"]
    rows = _generation_rows()
    ingest = integration.client.post(f"{API}/datasets/{ds}/records/", rows, format="json")
    assert ingest.status_code == 200, ingest.json()
    assert ingest.json()["created"] == len(rows)
    model_id = _model(engineer, ds, "chat-gpt2", "tiny-gpt2")
    shown = engineer.client.get(f"{API}/models/{model_id}/").json()
    assert shown["task"] == "generation"
    assert set(shown["plan"]["lora_targets"]) >= {"c_attn", "c_fc"}  # attention and MLP
    ask = {"inputs": ["where is my parcel please 3"], "max_new_tokens": 4}
    worker = Worker(shared_dirs)
    try:
        _train(engineer, model_id, worker)
        first = integration.client.post(f"{API}/models/{model_id}/generate/", ask, format="json")
        again = integration.client.post(f"{API}/models/{model_id}/generate/", ask, format="json")
        sampled = [
            integration.client.post(
                f"{API}/models/{model_id}/generate/",
                {**ask, "temperature": 1.0, "seed": 7},
                format="json",
            ).json()
            for _ in range(2)
        ]
        wrong = integration.client.post(
            f"{API}/models/{model_id}/predict/", {"inputs": ["hello"]}, format="json"
        )
        subject = _subject_in(model_id)
        doomed = _stages_reading(subject)
        req = _erase(integration, officer, subject, worker, "gen-1")
        after = integration.client.post(f"{API}/models/{model_id}/generate/", ask, format="json")
    finally:
        worker.stop()
    assert first.status_code == 200, first.json()
    out = first.json()["outputs"]
    assert len(out) == 1
    assert 1 <= len(out[0]["tokens"]) <= 4
    assert again.json() == first.json()  # greedy decoding is deterministic
    assert sampled[0] == sampled[1]  # and sampling is, for one seed
    assert wrong.status_code == 400
    assert "model" in wrong.json()["error"]["details"]
    assert after.status_code == 200, after.json()
    manifest = _serving_lineage_is_clean(model_id)
    assert after.json()["manifest_version"] == manifest.version > first.json()["manifest_version"]
    erased = Record.objects.filter(subject__external_ref=subject)
    assert erased.exists()
    assert set(erased.values_list("status", "text", "response")) == {("erased", "", "")}
    _certificate_holds(auditor, req, doomed)


def _image_rows(count: int) -> tuple[list[str], list[dict[str, str]]]:
    from unlearning.sample_images import SHAPE_LABELS, shape_images

    rows = [
        {
            "external_id": f"img-{i}",
            "subject_id": f"sitter-{i % 8}",
            "label": label,
            "image": base64.b64encode(data).decode(),
        }
        for i, (data, label) in enumerate(shape_images(count, seed=11))
    ]
    return list(SHAPE_LABELS), rows


def test_image_model_trains_predicts_and_deletes_the_bytes(
    engineer, integration, officer, auditor, shared_dirs
):
    from governance.images import image_bytes_exist

    labels, rows = _image_rows(48)
    dataset = integration.client.post(
        f"{API}/datasets/",
        {"name": "shapes", "task": "image_classification", "labels": labels},
        format="json",
    )
    assert dataset.status_code == 201, dataset.json()
    ds = dataset.json()["id"]
    ingest = integration.client.post(f"{API}/datasets/{ds}/records/", rows, format="json")
    assert ingest.status_code == 200, ingest.json()
    assert ingest.json()["created"] == len(rows)
    model_id = _model(engineer, ds, "shapes-vit", "tiny-vit")
    ask = {"images": [rows[0]["image"], rows[1]["image"]]}
    worker = Worker(shared_dirs)
    try:
        _train(engineer, model_id, worker)
        before = integration.client.post(f"{API}/models/{model_id}/predict/", ask, format="json")
        texts = integration.client.post(
            f"{API}/models/{model_id}/predict/", {"inputs": ["a circle"]}, format="json"
        )
        subject = _subject_in(model_id)
        keys = list(
            Record.objects.filter(subject__external_ref=subject).values_list("image_key", flat=True)
        )
        assert keys
        assert len(image_bytes_exist(keys)) >= len(keys)
        doomed = _stages_reading(subject)
        req = _erase(integration, officer, subject, worker, "img-1")
        after = integration.client.post(f"{API}/models/{model_id}/predict/", ask, format="json")
    finally:
        worker.stop()
    assert before.status_code == 200, before.json()
    assert [p["label"] in labels for p in before.json()["predictions"]] == [True, True]
    assert texts.status_code == 400
    assert "inputs" in texts.json()["error"]["details"]
    assert after.status_code == 200, after.json()
    manifest = _serving_lineage_is_clean(model_id)
    assert after.json()["manifest_version"] == manifest.version > before.json()["manifest_version"]
    assert image_bytes_exist(keys) == []  # the storage itself says so
    assert set(
        Record.objects.filter(subject__external_ref=subject).values_list("image_key", flat=True)
    ) == set(keys)  # the tombstone keeps the key the claim is checked against
    _certificate_holds(auditor, req, doomed)
