"""Erasure requests through the real URLconf and services: intake, preview, decisions,
execution (run inline here; tests/integration runs it on a real worker), purge and proof.

I2 is checked independently of the code under test: for every stage a manifest names, the
lineage is recomputed from the assignment rows and must hold no erased record.
"""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from governance.certificates.signing import certificate_verify
from governance.models import (
    AuditEvent,
    DeletionCertificate,
    ErasureRequest,
    Record,
    ServingManifest,
    SliceAssignment,
    Stage,
)
from governance.selectors.manifests import manifest_entries
from governance.services import erasure, erasure_execution
from governance.services.audit_integrity import audit_chain_verify
from tests.governance import web_helpers
from tests.governance.api_helpers import (
    API,
    create_dataset,
    error_of,
    run_training_inline,
    tiny_model,
    train_tiny_model,
)
from tests.governance.web_helpers import busiest_subject

URL = f"{API}/erasure-requests/"
# Fixtures shared with the web UI tests: a tiny model trained inline, files in tmp_path.
artifacts = web_helpers.artifacts
trained = web_helpers.trained


def file(client, subject, key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, {"subject_id": subject, **extra}, format="json", **headers)


def approve_and_run(officer, request_id, capture):
    with capture(execute=False) as callbacks:
        response = officer.client.post(f"{URL}{request_id}/approve/", {}, format="json")
    assert response.status_code == 200, response.content
    assert len(callbacks) == 1  # the execution task, queued after commit
    return erasure_execution.erasure_request_execute(request_id=request_id)


def assert_i2(model_id: int) -> ServingManifest:
    """Every stage the current manifest names reads no erased record (independent check)."""
    manifest = ServingManifest.objects.filter(model=model_id).order_by("-version").first()
    for entry in manifest.entries:
        for claimed in entry["stages"]:
            stage = Stage.objects.get(pk=claimed["id"])
            assert stage.state == "trained", stage
            lineage = Record.objects.filter(assignments__slice__in=stage.slices.all())
            assert lineage.exists()
            assert not lineage.filter(status="erased").exists(), f"I2: stage {stage.pk}"
            assert (Path(settings.ARTIFACT_ROOT) / stage.artifact_key).is_file()
    return manifest


# --- intake and preview ----------------------------------------------------------------


def test_filing_answers_201_with_deadline_and_impact_preview(integration, trained):
    subject = busiest_subject(trained["model"])

    response = file(integration.client, subject, reason="Art. 17 request by email")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "received"
    req = ErasureRequest.objects.get(pk=body["id"])
    assert req.due_at.month == (req.received_at.month % 12) + 1  # one calendar month
    assert 28 <= (req.due_at - req.received_at).days <= 31
    impact = body["impact"]
    records = Record.objects.filter(subject__external_ref=subject)
    assert impact["records_found"] == records.count() > 0
    (model,) = impact["models"]
    expected_stages = (
        Stage.objects.filter(slices__assignments__record__in=records).distinct().count()
    )
    assert model["stages_to_deactivate"] == expected_stages > 0
    (generation,) = model["generations"]
    (shard,) = generation["shards"]  # a subject's records share one cell
    assert shard["depth_before"] == 2
    assert shard["depth_after"] < 2
    assert generation["sequences_truncated"]
    assert [h["action"] for h in body["history"]] == ["received"]
    assert AuditEvent.objects.filter(action="erasure.received", object_id=str(req.pk)).exists()


def test_preview_matches_what_execution_does(
    officer, integration, trained, django_capture_on_commit_callbacks
):
    subject = busiest_subject(trained["model"])
    body = file(integration.client, subject).json()
    (generation,) = body["impact"]["models"][0]["generations"]

    approve_and_run(officer, body["id"], django_capture_on_commit_callbacks)

    manifest = assert_i2(trained["model"])
    depths = {e["shard"]: e["depth"] for e in manifest.entries}
    for shard in generation["shards"]:
        assert depths.get(shard["shard"], 0) == shard["depth_after"]


def test_same_idempotency_key_returns_the_same_request(integration, officer, trained):
    first = file(integration.client, "subj-x", key="k-1", reason="r")
    again = file(integration.client, "subj-x", key="k-1", reason="r")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert ErasureRequest.objects.count() == 1
    # Keys are per account: the officer's "k-1" is another request.
    assert file(officer.client, "subj-x", key="k-1", reason="r").status_code == 201
    assert ErasureRequest.objects.count() == 2


def test_same_key_with_another_body_is_422_and_files_nothing(integration, trained):
    assert file(integration.client, "subj-x", key="k-2").status_code == 201
    response = file(integration.client, "subj-y", key="k-2")
    error_of(response, 422, "idempotency_conflict", "Idempotency-Key")
    assert ErasureRequest.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "subject_id"),
        ({"subject_id": 42}, "subject_id"),
        ({"subject_id": ""}, "subject_id"),
        ({"subject_id": "s", "channel": "pigeon"}, "channel"),
        ({"subject_id": "s", "colour": "red"}, "colour"),
        ({"subject_id": "s", "received_at": "yesterday"}, "received_at"),
    ],
)
def test_bad_filing_is_400_naming_the_field(integration, body, field):
    response = integration.client.post(URL, body, format="json")
    error_of(response, 400, "invalid", field)
    assert not ErasureRequest.objects.exists()


def test_future_received_at_and_blank_key_are_refused(integration):
    future = (timezone.now() + timedelta(days=3)).isoformat()
    error_of(file(integration.client, "s", received_at=future), 400, "invalid", "received_at")
    error_of(file(integration.client, "s", key="  "), 400, "invalid", "Idempotency-Key")
    assert not ErasureRequest.objects.exists()


def test_roles(auditor, engineer, integration, officer, trained):
    assert file(auditor.client, "s").status_code == 403
    assert file(engineer.client, "s").status_code == 403
    req = file(officer.client, "s").json()["id"]
    # An integration account sees only its own requests; auditors see all.
    assert integration.client.get(f"{URL}{req}/").status_code == 404
    assert auditor.client.get(f"{URL}{req}/").status_code == 200
    for persona in (auditor, integration, engineer):
        response = persona.client.post(f"{URL}{req}/approve/", {}, format="json")
        assert response.status_code in (403, 404), persona
    assert ErasureRequest.objects.get(pk=req).status == "received"


def test_anonymous_is_401_but_public_key_is_public(client):
    assert client.get(URL).status_code == 401
    response = client.get(f"{API}/certificates/public-key/")
    assert response.status_code == 200
    assert response.json()["algorithm"] == "Ed25519"


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("approve", {"note": 5}, "note"),
        ("approve", {"colour": "red"}, "colour"),
        ("reject", {"reason": ""}, "reason"),
        ("reject", {}, "reason"),
        ("extend", {"reason": "  "}, "reason"),
        ("extend", {"reason": ["x"]}, "reason"),
    ],
)
def test_bad_decision_input_is_400_naming_the_field(officer, integration, action, body, field):
    req = file(integration.client, "s").json()["id"]
    response = officer.client.post(f"{URL}{req}/{action}/", body, format="json")
    error_of(response, 400, "invalid", field)
    assert ErasureRequest.objects.get(pk=req).status == "received"
    assert ErasureRequest.objects.get(pk=req).extended_due_at is None


@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "done"}, "status"), ({"limit": "0"}, "limit"), ({"page": "2"}, "page")],
)
def test_bad_list_filters_are_400(officer, query, field):
    error_of(officer.client.get(URL, query), 400, "invalid", field)


@pytest.mark.parametrize("suffix", ["", "approve/", "reject/", "extend/", "retry/", "certificate/"])
def test_unknown_request_is_404(officer, suffix):
    url = f"{URL}999999/{suffix}"
    response = (
        officer.client.get(url)
        if suffix in ("", "certificate/")
        else (officer.client.post(url, {"reason": "r"}, format="json"))
    )
    error_of(response, 404, "not_found")


def test_list_filters_by_status_and_subject(officer, integration):
    a = file(integration.client, "alice").json()["id"]
    file(integration.client, "bob")
    officer.client.post(f"{URL}{a}/reject/", {"reason": "duplicate"}, format="json")

    rejected = officer.client.get(URL, {"status": "rejected"}).json()
    bobs = officer.client.get(URL, {"subject_id": "bob"}).json()

    assert [r["id"] for r in rejected["results"]] == [a]
    assert (bobs["count"], bobs["results"][0]["subject_id"]) == (1, "bob")


# --- decisions ---------------------------------------------------------------------------


def test_reject_needs_a_reason_and_is_final(officer, integration, trained):
    req = file(integration.client, "s").json()["id"]
    error_of(
        officer.client.post(f"{URL}{req}/reject/", {}, format="json"), 400, "invalid", "reason"
    )
    done = officer.client.post(
        f"{URL}{req}/reject/", {"reason": "identity not verified"}, format="json"
    )
    assert done.json()["status"] == "rejected"
    error_of(
        officer.client.post(f"{URL}{req}/approve/", {}, format="json"), 409, "conflict", "status"
    )


def test_extension_once_with_reason_and_overdue_flag(officer, integration, trained):
    received = timezone.now() - timedelta(days=40)
    req = file(integration.client, "s", received_at=received.isoformat()).json()
    assert req["overdue"] is True
    listed = officer.client.get(URL, {"overdue": "true"}).json()
    assert [r["id"] for r in listed["results"]] == [req["id"]]

    extended = officer.client.post(
        f"{URL}{req['id']}/extend/", {"reason": "complex"}, format="json"
    )

    body = extended.json()
    assert body["overdue"] is False
    assert body["deadline"] == body["extended_due_at"]
    assert [h["action"] for h in body["history"]] == ["received", "extended"]
    again = officer.client.post(f"{URL}{req['id']}/extend/", {"reason": "more"}, format="json")
    error_of(again, 409, "conflict", "extended_due_at")
    assert officer.client.get(URL, {"overdue": "true"}).json()["results"] == []


def test_approving_twice_is_409(officer, integration, trained, django_capture_on_commit_callbacks):
    req = file(integration.client, "s").json()["id"]
    with django_capture_on_commit_callbacks(execute=False):
        assert officer.client.post(f"{URL}{req}/approve/", {}, format="json").status_code == 200
        again = officer.client.post(f"{URL}{req}/approve/", {}, format="json")
    error_of(again, 409, "conflict", "status")


def test_auto_approval_for_integrations_when_configured(
    settings, integration, officer, trained, django_capture_on_commit_callbacks
):
    settings.LETHE_AUTO_APPROVE_INTEGRATION = True
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        from_bot = file(integration.client, "s1").json()
        from_officer = file(officer.client, "s2").json()
    assert (from_bot["status"], from_officer["status"]) == ("approved", "received")
    assert len(callbacks) == 1
    assert from_bot["history"][-1]["actor"] == "policy:auto-approve-integration"


# --- execution ---------------------------------------------------------------------------


def test_execution_erases_deactivates_destroys_and_certifies(
    officer, integration, auditor, trained, django_capture_on_commit_callbacks
):
    model_id = trained["model"]
    subject = busiest_subject(model_id)
    records = list(Record.objects.filter(subject__external_ref=subject))
    doomed = list(
        Stage.objects.filter(slices__assignments__record__in=records).distinct().order_by("pk")
    )
    files = [Path(settings.ARTIFACT_ROOT) / s.artifact_key for s in doomed]
    assert all(f.is_file() for f in files)
    before = ServingManifest.objects.filter(model=model_id).order_by("-version").first()
    req = file(integration.client, subject).json()["id"]

    assert approve_and_run(officer, req, django_capture_on_commit_callbacks) == "completed"

    for record in Record.objects.filter(pk__in=[r.pk for r in records]):
        assert (record.status, record.text, record.label) == ("erased", "", "")
        assert record.erased_at is not None
    assert {s.state for s in Stage.objects.filter(pk__in=[s.pk for s in doomed])} == {"destroyed"}
    assert not any(f.exists() for f in files)
    manifest = assert_i2(model_id)
    assert manifest.version == before.version + 1
    # The certificate verifies and its claims hold against the database.
    envelope = auditor.client.get(f"{URL}{req}/certificate/").json()
    assert certificate_verify(envelope).ok
    body = envelope["certificate"]
    assert body["records_erased"] == sorted(r.external_id for r in records)
    (claim,) = body["models"]
    assert sorted(s["id"] for s in claim["stages_deactivated"]) == [s.pk for s in doomed]
    assert claim["manifest_before"]["digest"] == before.digest
    assert claim["manifest_after"]["digest"] == manifest.digest
    assert claim["i2_check"] == "passed"
    check = auditor.client.post(f"{API}/certificates/verify/", envelope, format="json").json()
    assert check["ok"], check
    # Predictions keep working and name the new manifest.
    predicted = integration.client.post(
        f"{API}/models/{model_id}/predict/", {"inputs": ["where is my parcel"]}, format="json"
    ).json()
    assert predicted["manifest_version"] == manifest.version
    detail = officer.client.get(f"{URL}{req}/").json()
    assert [h["action"] for h in detail["history"]] == [
        "received", "approved", "deactivated", "completed"
    ]  # fmt: skip
    assert detail["certificate_id"] == body["certificate_id"]
    assert audit_chain_verify().ok


def test_tampered_certificate_fails_verification(
    officer, integration, auditor, trained, django_capture_on_commit_callbacks
):
    req = file(integration.client, busiest_subject(trained["model"])).json()["id"]
    approve_and_run(officer, req, django_capture_on_commit_callbacks)
    envelope = auditor.client.get(f"{URL}{req}/certificate/").json()
    envelope["certificate"]["records_erased"] = envelope["certificate"]["records_erased"][1:]

    check = auditor.client.post(f"{API}/certificates/verify/", envelope, format="json").json()

    assert (check["ok"], check["signature"]["ok"]) == (False, False)


def test_certificate_pdf_and_bad_format(
    officer, integration, trained, django_capture_on_commit_callbacks
):
    req = file(integration.client, "nobody-here").json()["id"]
    error_of(officer.client.get(f"{URL}{req}/certificate/"), 404, "not_found", "certificate")
    approve_and_run(officer, req, django_capture_on_commit_callbacks)

    pdf = officer.client.get(f"{URL}{req}/certificate/", {"format": "pdf"})

    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    error_of(
        officer.client.get(f"{URL}{req}/certificate/", {"format": "xml"}), 400, "invalid", "format"
    )


def test_unknown_subject_completes_with_no_records_found(
    officer, integration, trained, django_capture_on_commit_callbacks
):
    versions = ServingManifest.objects.count()
    req = file(integration.client, "never-seen").json()
    assert req["impact"]["records_found"] == 0
    assert req["impact"]["models"] == []

    assert approve_and_run(officer, req["id"], django_capture_on_commit_callbacks) == "completed"

    body = DeletionCertificate.objects.get(request=req["id"]).envelope["certificate"]
    assert (body["outcome"], body["records_erased"], body["models"]) == ("no_records_found", [], [])
    assert certificate_verify(DeletionCertificate.objects.get(request=req["id"]).envelope).ok
    assert ServingManifest.objects.count() == versions


def test_records_not_yet_trained_need_no_model_action(
    officer, integration, trained, sample, django_capture_on_commit_callbacks
):
    late = {
        "external_id": "late-1",
        "subject_id": "newcomer",
        "text": "hello",
        "label": sample.labels[0],
    }
    integration.client.post(f"{API}/datasets/{trained['dataset']}/records/", [late], format="json")
    req = file(integration.client, "newcomer").json()
    assert (req["impact"]["records_found"], req["impact"]["records_not_yet_trained"]) == (1, 1)
    stages = dict(Stage.objects.values_list("pk", "state"))

    approve_and_run(officer, req["id"], django_capture_on_commit_callbacks)

    assert Record.objects.get(external_id="late-1").status == "erased"
    assert dict(Stage.objects.values_list("pk", "state")) == stages


def test_execution_is_idempotent(officer, integration, trained, django_capture_on_commit_callbacks):
    req = file(integration.client, busiest_subject(trained["model"])).json()["id"]
    approve_and_run(officer, req, django_capture_on_commit_callbacks)
    events = AuditEvent.objects.count()
    certificate = DeletionCertificate.objects.get(request=req).certificate_id

    assert erasure_execution.erasure_request_execute(request_id=req) == "completed"

    assert AuditEvent.objects.count() == events
    assert DeletionCertificate.objects.get(request=req).certificate_id == certificate


@pytest.mark.parametrize("crash_in", ["purge", "certify"])
def test_a_crash_between_phases_is_finished_by_a_retry(
    crash_in, monkeypatch, officer, integration, trained, django_capture_on_commit_callbacks
):
    req = file(integration.client, busiest_subject(trained["model"])).json()["id"]
    with django_capture_on_commit_callbacks(execute=False):
        officer.client.post(f"{URL}{req}/approve/", {}, format="json")

    def crash(*args, **kwargs):
        raise OSError("worker lost")

    target = "stages_destroy" if crash_in == "purge" else "_certify"
    with monkeypatch.context() as patch:
        patch.setattr(erasure_execution, target, crash)
        with pytest.raises(OSError, match="worker lost"):
            erasure_execution.erasure_request_execute(request_id=req)
    # Phase 1 committed: the stages no longer serve even before the retry.
    assert ErasureRequest.objects.get(pk=req).status == "executing"
    assert_i2(trained["model"])
    assert erasure_execution.erasure_requests_stuck(older_than=timedelta(0)) == [req]

    assert erasure_execution.erasure_request_execute(request_id=req) == "completed"

    assert not Stage.objects.filter(state="deactivated").exists()
    assert certificate_verify(DeletionCertificate.objects.get(request=req).envelope).ok


def test_failed_request_can_be_retried(
    officer, integration, trained, django_capture_on_commit_callbacks
):
    req = file(integration.client, "s").json()["id"]
    with django_capture_on_commit_callbacks(execute=False):
        officer.client.post(f"{URL}{req}/approve/", {}, format="json")
    erasure.erasure_request_fail(request_id=req, error="broker down")
    assert officer.client.get(f"{URL}{req}/").json()["status"] == "failed"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        retried = officer.client.post(f"{URL}{req}/retry/", {}, format="json")

    assert retried.json()["status"] == "approved"
    assert len(callbacks) == 1
    assert erasure_execution.erasure_request_execute(request_id=req) == "completed"


def test_erasure_while_a_stage_trains_makes_it_unusable(
    monkeypatch,
    engineer,
    integration,
    officer,
    sample,
    artifacts,
    django_capture_on_commit_callbacks,
):
    """I5: the erasure commits while stage training runs; the stage never becomes trained."""
    from governance.services import training_tasks as training

    dataset_id = create_dataset(integration.client, sample)
    model_id = engineer.client.post(f"{API}/models/", tiny_model(dataset_id), format="json").json()[
        "id"
    ]
    with django_capture_on_commit_callbacks(execute=False):
        job = engineer.client.post(f"{API}/models/{model_id}/train/").json()["job"]
    first_stage = Stage.objects.filter(shard__model=model_id, position=1).order_by("pk").first()
    victim = (
        Record.objects.filter(assignments__slice__in=first_stage.slices.all())
        .values_list("subject__external_ref", flat=True)
        .first()
    )
    renewer = training._lease_renewer
    fired = []

    def erase_midway(stage):
        renew = renewer(stage)

        def step(n, loss):
            if stage.pk == first_stage.pk and not fired:
                fired.append(True)
                req = file(integration.client, victim).json()["id"]
                approve_and_run(officer, req, django_capture_on_commit_callbacks)
            renew(n, loss)

        return step

    monkeypatch.setattr(training, "_lease_renewer", erase_midway)
    run_training_inline(job)

    assert fired
    stage = Stage.objects.get(pk=first_stage.pk)
    assert stage.state in ("deactivated", "destroyed")
    assert stage.trained_at is None
    key_file = Path(artifacts) / f"model-{model_id}" / "gen-1"
    assert not list(key_file.glob(f"shard-{stage.shard.index:03d}/stage-{stage.prefix}*"))
    assert erasure_execution.stages_purge_orphans() in ([], [stage.pk])
    for manifest in ServingManifest.objects.filter(model=model_id):
        assert stage.pk not in {s["id"] for e in manifest.entries for s in e["stages"]}
    assert_i2(model_id)


@pytest.mark.django_db(transaction=True)
def test_concurrent_erasures_on_one_shard_end_as_if_sequential(
    engineer, integration, officer, sample, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "signing.pem"
    dataset_id = create_dataset(integration.client, sample)
    model_id = engineer.client.post(
        f"{API}/models/", tiny_model(dataset_id, shards=1, slices=3, sequences=3), format="json"
    ).json()["id"]
    job = engineer.client.post(f"{API}/models/{model_id}/train/").json()["job"]
    run_training_inline(job)
    refs = list(
        SliceAssignment.objects.filter(model=model_id)
        .order_by("slice__index", "record__external_id")
        .values_list("record__subject__external_ref", "slice__index")
    )
    first = refs[0][0]
    second = next(r for r, s in refs if s != refs[0][1])
    doomed = set(
        Stage.objects.filter(
            slices__assignments__record__subject__external_ref__in=[first, second]
        ).values_list("pk", flat=True)
    )
    from governance.models import UnlearningModel

    expected = manifest_entries(UnlearningModel.objects.get(pk=model_id), assume_deactivated=doomed)
    ids = [file(integration.client, ref).json()["id"] for ref in (first, second)]
    for req in ids:
        ErasureRequest.objects.filter(pk=req).update(status="approved")
    errors = []

    def run(req):
        try:
            erasure_execution.erasure_request_execute(request_id=req)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(req,)) for req in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert not errors, errors
    assert set(ErasureRequest.objects.values_list("status", flat=True)) == {"completed"}
    final = assert_i2(model_id)
    assert final.entries == expected
    versions = list(
        ServingManifest.objects.filter(model=model_id).values_list("version", flat=True)
    )
    assert sorted(versions) == list(range(1, len(versions) + 1))
    assert set(Stage.objects.filter(pk__in=doomed).values_list("state", flat=True)) == {"destroyed"}


# --- scheduled retraining ---------------------------------------------------------------


def test_retraining_replaces_only_shallow_shards_as_a_new_generation(
    engineer, integration, officer, sample, artifacts, django_capture_on_commit_callbacks
):
    from governance.models import UnlearningModel
    from governance.services.retraining import models_retrain_due

    dataset_id = create_dataset(integration.client, sample)
    model_id = train_tiny_model(
        engineer, dataset_id, django_capture_on_commit_callbacks, retrain_threshold=2
    )
    subject = busiest_subject(model_id)
    hit_shard = SliceAssignment.objects.filter(
        model=model_id, record__subject__external_ref=subject
    ).values_list("slice__shard__index", flat=True)[0]
    kept = {
        s.prefix: s.tensor_digest
        for s in Stage.objects.filter(shard__model=model_id, shard__index=1 - hit_shard)
    }
    req = file(integration.client, subject).json()["id"]
    approve_and_run(officer, req, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        (retrain,) = models_retrain_due(actor="scheduler")
    assert len(callbacks) == 1
    assert (retrain.kind, retrain.retrained_shards, retrain.generation) == (
        "retrain",
        [hit_shard],
        2,
    )
    # The old generation serves, and answers, until the new one is complete.
    serving = ServingManifest.objects.filter(model=model_id).order_by("-version")[0]
    assert serving.generation == 1
    during = integration.client.post(
        f"{API}/models/{model_id}/predict/", {"inputs": ["refund please"]}, format="json"
    )
    assert during.json()["manifest_version"] == serving.version
    run_training_inline(retrain.pk)

    model = UnlearningModel.objects.get(pk=model_id)
    manifest = assert_i2(model_id)
    assert (model.status, model.generation, manifest.generation) == ("ready", 2, 2)
    assert {e["depth"] for e in manifest.entries} == {2}
    carried = {
        s.prefix: s.tensor_digest
        for s in Stage.objects.filter(
            shard__model=model_id, shard__generation=2, shard__index=1 - hit_shard
        )
    }
    assert carried == kept  # the untouched shard is the same bytes
    erased = Record.objects.filter(subject__external_ref=subject)
    assert not SliceAssignment.objects.filter(record__in=erased, generation=2).exists()
    old = Stage.objects.filter(shard__model=model_id, shard__generation=1)
    assert set(old.values_list("state", flat=True)) <= {"retired", "destroyed"}
    assert not list((Path(artifacts) / f"model-{model_id}" / "gen-1").rglob("*.safetensors"))
    predicted = integration.client.post(
        f"{API}/models/{model_id}/predict/", {"inputs": ["refund please"]}, format="json"
    ).json()
    assert predicted["manifest_version"] == manifest.version
    assert audit_chain_verify().ok


# --- verify_certificate ---------------------------------------------------------------


def test_verify_certificate_command(
    officer, integration, trained, tmp_path, django_capture_on_commit_callbacks
):
    import json

    from django.core.management import CommandError, call_command

    req = file(integration.client, busiest_subject(trained["model"])).json()["id"]
    approve_and_run(officer, req, django_capture_on_commit_callbacks)
    envelope = DeletionCertificate.objects.get(request=req).envelope
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(envelope))
    out = io.StringIO()

    call_command("verify_certificate", str(path), stdout=out)

    assert "signature OK" in out.getvalue()
    assert "claims OK" in out.getvalue()
    assert "FAIL" not in out.getvalue()
    # A backup restore that brings a record back breaks a claim, though the signature holds.
    erased = envelope["certificate"]["records_erased"][0]
    Record.objects.filter(external_id=erased).update(
        status="active", erased_at=None, text="restored", label=trained_label()
    )
    with pytest.raises(CommandError, match="claims FAILED: records_erased"):
        call_command("verify_certificate", str(path), stdout=io.StringIO())
    # Offline, with another key: the signature fails.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(CommandError, match="signature INVALID"):
        call_command(
            "verify_certificate", str(path), "--offline", "--public-key", str(other), stdout=out
        )
    path.write_text("{not json")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command("verify_certificate", str(path), stdout=out)


def trained_label() -> str:
    from governance.models import Dataset

    return Dataset.objects.get().labels[0]


def test_destroyed_stages_leave_this_process_memory(
    officer, integration, trained, django_capture_on_commit_callbacks
):
    from governance import engine
    from governance.models import UnlearningModel
    from governance.services.serving import predictors

    model = UnlearningModel.objects.get(pk=trained["model"])
    subject = busiest_subject(model.pk)
    doomed = Stage.objects.filter(
        slices__assignments__record__subject__external_ref=subject, state="trained"
    ).distinct()
    doomed_keys = {engine.stage_key(s) for s in doomed}
    integration.client.post(
        f"{API}/models/{model.pk}/predict/", {"inputs": ["refund"]}, format="json"
    )
    old = predictors._items[model.pk][1]
    assert doomed_keys & set(old.cache._items)  # a serving stage of the subject is loaded
    host, _ = engine.hosts.get(model, "serving")
    assert any(p.abs().sum() > 0 for n, p in host.model.named_parameters() if "lora_" in n)

    req = file(integration.client, subject).json()["id"]
    approve_and_run(officer, req, django_capture_on_commit_callbacks)

    assert model.pk not in predictors._items
    assert not old.cache._items
    assert all(p.abs().sum() == 0 for n, p in host.model.named_parameters() if "lora_" in n)
    after = integration.client.post(
        f"{API}/models/{model.pk}/predict/", {"inputs": ["refund"]}, format="json"
    )
    assert after.status_code == 200
    assert not doomed_keys & set(predictors._items[model.pk][1].cache._items)
