"""The model page's "try it" panel: an officer or an ML engineer asks the serving model one
question, before and after an erasure, and sees which manifest answered."""

from __future__ import annotations

from governance.services import erasure, erasure_execution
from tests.governance import web_helpers
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
