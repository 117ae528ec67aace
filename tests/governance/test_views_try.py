"""The model page's "try it" panel: an officer or an ML engineer asks the serving model one
question, before and after an erasure, and sees which manifest answered."""

from __future__ import annotations

import base64

from django.core.files.uploadedfile import SimpleUploadedFile

from governance.services import erasure, erasure_execution
from tests.governance import web_helpers
from tests.governance.api_helpers import API, run_training_inline, tiny_model
from tests.governance.web_helpers import browser, busiest_subject, find, find_all, ids_on

# Fixtures: a tiny model trained inline, with artifacts and the signing key in tmp_path.
artifacts = web_helpers.artifacts
trained = web_helpers.trained


def _try(client, model_id: int, text: str):
    return client.post(f"/models/{model_id}/try/", {"input": text})


def test_officer_sees_the_answer_and_its_manifest_change_with_an_erasure(
    officer, trained, django_capture_on_commit_callbacks
):
    model_id = trained["model"]
    client = browser(officer)
    page = client.get(f"/models/{model_id}/")
    assert "try-it" in ids_on(page)
    assert find(page, data_testid="model-task").text == "Classification"

    before = _try(client, model_id, "where is my parcel")
    assert before.status_code == 200
    result = find(before, data_testid="try-result")
    assert result["data-version"] == "1"
    label = find(before, data_testid="try-label").text
    assert label  # one of the dataset's labels, with every label's score listed below it
    assert len(find_all(before, "li")) >= 2

    subject = busiest_subject(model_id)
    req, _ = erasure.erasure_request_create(actor=officer.user, subject_ref=subject)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/requests/{req.pk}/approve/", {"note": "verified"})
    assert erasure_execution.erasure_request_execute(request_id=req.pk) == "completed"

    after = _try(client, model_id, "where is my parcel")
    assert int(find(after, data_testid="try-result")["data-version"]) > 1
    assert find(after, "textarea").text == "where is my parcel"  # the input stays


def test_a_blank_input_is_named_and_nothing_is_predicted(engineer, trained):
    page = _try(browser(engineer), trained["model"], "   ")

    assert page.status_code == 200
    assert "input" in find(page, data_testid="try-error").text
    assert "try-result" not in ids_on(page)


def test_auditors_have_no_panel_and_cannot_post_to_it(auditor, trained):
    client = browser(auditor)

    assert "try-it" not in ids_on(client.get(f"/models/{trained['model']}/"))
    assert _try(client, trained["model"], "hello").status_code == 403


def _trained(engineer, integration, dataset: dict, rows: list[dict], base_model: str, capture):
    created = integration.client.post(f"{API}/datasets/", dataset, format="json")
    assert created.status_code == 201, created.content
    ds = created.json()["id"]
    ingest = integration.client.post(f"{API}/datasets/{ds}/records/", rows, format="json")
    assert ingest.status_code == 200, ingest.content
    body = tiny_model(ds, name=f"try-{base_model}", base_model=base_model, batch_size=8)
    model_id = engineer.client.post(f"{API}/models/", body, format="json").json()["id"]
    with capture(execute=False):
        job = engineer.client.post(f"{API}/models/{model_id}/train/").json()["job"]
    run_training_inline(job)
    return model_id


def test_a_generation_model_answers_the_panel_with_text(
    engineer, integration, artifacts, django_capture_on_commit_callbacks
):
    rows = [
        {
            "external_id": f"c{i}",
            "subject_id": f"p{i % 4}",
            "prompt": f"hello {i}",
            "response": "hi",
        }
        for i in range(16)
    ]
    model_id = _trained(
        engineer, integration, {"name": "chats", "task": "generation"}, rows, "tiny-gpt2",
        django_capture_on_commit_callbacks,
    )  # fmt: skip
    client = browser(engineer)

    page = _try(client, model_id, "hello 3")

    assert find(page, data_testid="model-task").text == "Generation"
    assert find(page, data_testid="try-result")["data-version"] == "1"
    text = find(page, data_testid="try-text").text
    api = engineer.client.post(
        f"{API}/models/{model_id}/generate/", {"inputs": ["hello 3"]}, format="json"
    ).json()
    assert text == " ".join(api["outputs"][0]["text"].split())  # the API's greedy answer


def test_an_image_model_answers_an_upload_and_names_a_bad_one(
    engineer, integration, artifacts, django_capture_on_commit_callbacks
):
    from unlearning.sample_images import SHAPE_LABELS, shape_images

    shapes = shape_images(16, seed=4)
    rows = [
        {"external_id": f"i{i}", "subject_id": f"p{i % 4}", "label": label,
         "image": base64.b64encode(data).decode()}
        for i, (data, label) in enumerate(shapes)
    ]  # fmt: skip
    dataset = {"name": "shapes", "task": "image_classification", "labels": list(SHAPE_LABELS)}
    model_id = _trained(
        engineer, integration, dataset, rows, "tiny-vit", django_capture_on_commit_callbacks
    )
    client = browser(engineer)

    good = client.post(
        f"/models/{model_id}/try/", {"image": SimpleUploadedFile("a.png", shapes[0][0])}
    )
    bad = client.post(f"/models/{model_id}/try/", {"image": SimpleUploadedFile("a.png", b"GIF89a")})

    assert find(good, data_testid="try-label").text in SHAPE_LABELS
    assert find(good, data_testid="try-result")["data-version"] == "1"
    assert find(bad, data_testid="try-error").text.startswith("image:")
    assert "try-result" not in ids_on(bad)
