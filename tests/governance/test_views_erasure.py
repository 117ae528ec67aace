"""The web UI against a real tiny model trained inline: the impact preview before filing,
the stage grid and lineage before and after an erasure, and certificate downloads."""

from __future__ import annotations

import json

import pytest

from governance.certificates.signing import certificate_verify
from governance.models import ErasureRequest, Record, ServingManifest, Stage
from governance.selectors import impact
from governance.services import erasure, erasure_execution
from tests.governance import web_helpers
from tests.governance.web_helpers import browser, busiest_subject, find, find_all, ids_on

# Fixtures: a tiny model trained inline, with artifacts and the signing key in tmp_path.
artifacts = web_helpers.artifacts
trained = web_helpers.trained


def serving_ids(model_id):
    manifest = ServingManifest.objects.filter(model=model_id).order_by("-version").first()
    return {str(s["id"]) for e in manifest.entries for s in e["stages"]}


def cells_by_state(page):
    out = {}
    for cell in find_all(page, data_testid="grid-cell"):
        out.setdefault(cell["data-state"], set()).add(cell["data-stage-id"])
    return out


def test_preview_names_shards_and_truncated_sequences_then_files_one(officer, trained):
    subject = busiest_subject(trained["model"])
    expected = impact.erasure_impact(subject_ref=subject)
    (generation,) = expected["models"][0]["generations"]
    client = browser(officer)

    page = client.get("/requests/new/", {"subject_ref": subject})

    preview = find(page, data_testid="impact-preview")
    records = Record.objects.filter(subject__external_ref=subject).count()
    assert preview["data-records-found"] == str(records) != "0"
    model = find(page, data_testid="impact-model")
    assert model["data-model-id"] == str(trained["model"])
    assert "stages to deactivate" in model.text
    shards = find_all(page, data_testid="impact-shard")
    assert [(s["data-shard"], s["data-depth-before"], s["data-depth-after"]) for s in shards] == [
        (str(s["shard"]), str(s["depth_before"]), str(s["depth_after"]))
        for s in generation["shards"]
    ]
    assert shards[0]["data-depth-before"] == "2"
    truncated = find_all(page, data_testid="impact-sequence")
    assert [(t["data-shard"], t["data-sequence"]) for t in truncated] == [
        (str(t["shard"]), str(t["sequence"])) for t in generation["sequences_truncated"]
    ]
    assert truncated
    assert "→" in truncated[0].text

    key = find(page, "input", name="idempotency_key")["value"]
    response = client.post(
        "/requests/new/", {"subject_ref": subject, "channel": "email", "idempotency_key": key}
    )
    assert response.status_code == 302
    assert ErasureRequest.objects.filter(subject_ref=subject).count() == 1


def test_model_page_lineage_and_dashboard_before_an_erasure(auditor, trained):
    model_id = trained["model"]
    subject = busiest_subject(model_id)
    client = browser(auditor)

    page = client.get(f"/models/{model_id}/")
    states = cells_by_state(page)
    lineage = client.get("/lineage/", {"subject_ref": subject})
    dashboard = client.get("/")

    assert states["serving"] == serving_ids(model_id)
    assert set(states) <= {"serving", "trained"}
    assert find(page, data_testid="training-progress")["data-status"] == "succeeded"
    assert [r["data-version"] for r in find_all(page, data_testid="manifest-row")] == ["1"]
    stages = find_all(lineage, data_testid="lineage-stage")
    assert stages
    assert {s["data-state"] for s in stages} <= {"serving", "trained"}
    assert {r["data-status"] for r in find_all(lineage, data_testid="lineage-record")} == {"active"}
    assert [s["data-depth"] for s in find_all(dashboard, data_testid="shard-health")] == ["2", "2"]


def test_erasure_marks_stages_deactivated_then_destroyed_and_issues_certificates(
    officer, auditor, engineer, trained, monkeypatch, django_capture_on_commit_callbacks
):
    model_id = trained["model"]
    subject = busiest_subject(model_id)
    req, _ = erasure.erasure_request_create(actor=officer.user, subject_ref=subject)
    client = browser(officer)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(f"/requests/{req.pk}/approve/", {"note": "verified by email"})
    assert len(queued) == 1

    # Phase 1 commits, then the purge fails: the stages are deactivated, not yet destroyed.
    def purge_fails(request):
        raise RuntimeError("storage unreachable")

    monkeypatch.setattr(erasure_execution, "_purge", purge_fails)
    with pytest.raises(RuntimeError):
        erasure_execution.erasure_request_execute(request_id=req.pk)
    req.refresh_from_db()
    doomed = {str(i) for m in req.execution["models"] for i in m["stages"]}
    assert doomed
    halfway = cells_by_state(client.get(f"/models/{model_id}/"))
    assert halfway["deactivated"] == doomed
    assert not doomed & halfway.get("serving", set())

    monkeypatch.undo()
    assert erasure_execution.erasure_request_execute(request_id=req.pk) == "completed"

    grid = client.get(f"/models/{model_id}/")
    after = cells_by_state(grid)
    assert after["destroyed"] == doomed
    assert after.get("serving", set()) == serving_ids(model_id)
    assert not Stage.objects.filter(pk__in=doomed).exclude(state="destroyed").exists()
    assert len(find_all(grid, data_testid="manifest-row")) == 2

    lineage = browser(auditor).get("/lineage/", {"subject_ref": subject})
    assert {s["data-state"] for s in find_all(lineage, data_testid="lineage-stage")} == {
        "destroyed"
    }
    assert {r["data-status"] for r in find_all(lineage, data_testid="lineage-record")} == {"erased"}

    detail = browser(auditor).get(f"/requests/{req.pk}/")
    assert find(detail, data_testid="request-status")["data-status"] == "completed"
    json_url = find(detail, data_testid="certificate-json")["href"]
    pdf_url = find(detail, data_testid="certificate-pdf")["href"]
    assert "approve-button" not in ids_on(detail)

    document = browser(auditor).get(json_url)
    assert document.status_code == 200
    assert document["Content-Disposition"] == (
        f'attachment; filename="erasure-certificate-{req.pk}.json"'
    )
    envelope = json.loads(document.content)
    check = certificate_verify(envelope)
    assert check.ok, check.reason
    assert envelope["certificate"]["request_id"] == req.pk
    assert envelope["certificate"]["subject_ref"] == subject
    assert envelope == req.certificate.envelope

    pdf = browser(auditor).get(pdf_url)
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"].startswith("attachment;")

    assert browser(engineer).get(json_url).status_code == 403
    assert browser(engineer).get(pdf_url).status_code == 403
