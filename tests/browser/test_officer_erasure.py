"""An officer's erasure, end to end in a real browser, executed by a real worker process.

The officer signs in, looks a subject up on the new-request form and sees the impact
preview before anything is filed, files and approves the request; a separate
``manage.py worker`` process (tests/integration's Worker) carries the erasure out. The
officer reloads the request page until it says completed, downloads the signed JSON and
the PDF through the page's links, and the model grid then shows exactly the stages whose
lineage held the subject's records as destroyed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from governance.certificates.signing import certificate_verify
from governance.models import ErasureRequest, Record, Stage, TrainingJob
from governance.services import training
from tests.browser.conftest import screenshot, sign_in
from tests.governance.api_helpers import run_training_inline
from tests.governance.web_helpers import busiest_subject
from tests.integration.conftest import shared_dirs
from tests.integration.test_worker import Worker, _create_model

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]
shared_dirs = shared_dirs  # artifacts and signing key in tmp_path, broker queue emptied
COMPLETION_TIMEOUT_S = 120


def _train_inline(engineer, model_id: int, monkeypatch) -> None:
    """Train in this process (the worker then only has the erasure to do): the training
    tasks are not queued, so the worker never sees them."""
    with monkeypatch.context() as m:
        m.setattr(training, "_enqueue", lambda task_ids: None)
        started = engineer.client.post(f"/api/v1/models/{model_id}/train/")
    assert started.status_code == 202, started.json()
    run_training_inline(started.json()["job"])
    assert TrainingJob.objects.get(model=model_id).status == "succeeded"


def _status_after_reloads(page, worker: Worker, want: str, timeout: float) -> str:
    """Reload the page until its status is ``want`` (or the time is up); return the last."""
    status = page.get_by_test_id("request-status")
    deadline = time.monotonic() + timeout
    while True:
        seen = status.get_attribute("data-status")
        if seen in (want, "failed") or time.monotonic() > deadline:
            return seen
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited:\n{worker.log()}")
        time.sleep(0.5)
        page.reload()


def _grid_cells(page) -> list[dict]:
    return page.get_by_test_id("grid-cell").evaluate_all(
        "cells => cells.map(c => ({state: c.dataset.state, stage: c.dataset.stageId}))"
    )


def test_officer_files_approves_and_gets_a_verified_certificate(
    page, officer, engineer, integration, sample, shared_dirs, monkeypatch
):
    # 2 shards x 2 slices x 2 cyclic sequences, LoRA rank 4: about ten seconds of training.
    model_id = _create_model(
        engineer, integration, sample, "support-intents", slices=2, lora={"rank": 4, "alpha": 8}
    )
    _train_inline(engineer, model_id, monkeypatch)
    subject = busiest_subject(model_id)
    records = Record.objects.filter(subject__external_ref=subject).count()
    # The stages whose lineage holds one of the subject's records (before the erasure).
    doomed = set(
        Stage.objects.filter(
            shard__model=model_id, slices__assignments__record__subject__external_ref=subject
        )
        .distinct()
        .values_list("pk", flat=True)
    )
    assert records
    assert doomed
    assert Stage.objects.filter(shard__model=model_id).exclude(pk__in=doomed).exists()

    worker = Worker(shared_dirs)  # boots while the officer files the request
    try:
        sign_in(page, officer)

        # Look the subject up: the impact preview comes before anything is filed.
        page.get_by_test_id("new-request-link").click()
        page.get_by_label("Subject reference").fill(subject)
        page.get_by_test_id("lookup-button").click()
        preview = page.get_by_test_id("impact-preview")
        expect(preview).to_have_attribute("data-records-found", str(records))
        model_card = page.get_by_test_id("impact-model")
        expect(model_card).to_have_attribute("data-model-id", str(model_id))
        expect(model_card).to_contain_text(f"{len(doomed)} stages to deactivate and destroy")
        expect(page.get_by_test_id("impact-sequence").first).to_be_visible()
        assert not ErasureRequest.objects.exists(), "the preview filed a request"
        screenshot(page, "new-request-preview", full_page=True)

        page.get_by_label("Received by").select_option("email")
        page.get_by_label("Note (optional)").fill("Asked by email to delete everything.")
        page.get_by_test_id("file-button").click()
        req = ErasureRequest.objects.get()
        page.wait_for_url(f"**/requests/{req.pk}/")
        expect(page.get_by_test_id("messages")).to_contain_text(f"#{req.pk} filed")
        expect(page.get_by_test_id("request-status")).to_have_attribute("data-status", "received")
        assert (req.subject_ref, req.channel, req.filed_by_id) == (
            subject,
            "email",
            officer.user.pk,
        )

        page.goto("/")
        expect(page.get_by_test_id("request-row")).to_have_attribute("data-request-id", str(req.pk))
        screenshot(page, "dashboard")

        # Approve: the worker process, not this one, carries the erasure out.
        page.goto(f"/requests/{req.pk}/")
        page.get_by_label("Approval note (optional)").fill("Identity checked.")
        page.get_by_test_id("approve-button").click()
        expect(page.get_by_test_id("messages")).to_contain_text("the erasure is queued")
        status = _status_after_reloads(page, worker, "completed", COMPLETION_TIMEOUT_S)
        assert status == "completed", f"request is {status}:\n{worker.log()}"
    finally:
        worker.stop()

    actions = page.get_by_test_id("timeline-event").evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )
    assert actions[:2] == ["received", "approved"]
    assert "deactivated" in actions
    assert actions[-1] == "completed"
    expect(page.get_by_test_id("decisions")).to_have_count(0)
    screenshot(page, "request-detail", full_page=True)

    # The signed JSON, through the page's link, verifies against the published key.
    with page.expect_download() as json_download:
        page.get_by_test_id("certificate-json").click()
    envelope = json.loads(Path(json_download.value.path()).read_text())
    assert json_download.value.suggested_filename == f"erasure-certificate-{req.pk}.json"
    public_key = page.request.get("/api/v1/certificates/public-key/").json()["public_key_pem"]
    check = certificate_verify(envelope, public_key_pem=public_key)
    assert check.ok, check.reason
    body = envelope["certificate"]
    assert (body["request_id"], body["subject_ref"], body["records_found"]) == (
        req.pk,
        subject,
        records,
    )
    assert {s["id"] for m in body["models"] for s in m["stages_deactivated"]} == doomed

    with page.expect_download() as pdf_download:
        page.get_by_test_id("certificate-pdf").click()
    assert Path(pdf_download.value.path()).read_bytes().startswith(b"%PDF")

    # The model grid: exactly the stages that learned from the subject are destroyed.
    page.goto(f"/models/{model_id}/")
    cells = _grid_cells(page)
    assert len(cells) == Stage.objects.filter(shard__model=model_id).count()
    destroyed_in_db = set(
        Stage.objects.filter(shard__model=model_id, state="destroyed").values_list("pk", flat=True)
    )
    destroyed_on_page = {int(c["stage"]) for c in cells if c["state"] == "destroyed"}
    assert destroyed_on_page == destroyed_in_db == doomed
    assert {c["state"] for c in cells if int(c["stage"]) not in doomed} <= {"serving", "trained"}
    expect(page.locator('[data-testid="grid-sequence"][data-serving="true"]').first).to_be_visible()
    page.get_by_role("heading", name="Stages", level=2).evaluate("h => h.scrollIntoView()")
    screenshot(page, "model-grid")
