"""The purge's stage marking commits with the certificate: a crash in between loses neither.

The purge deletes the stages' bytes; the certificate's transaction marks them destroyed,
with their audit event, and issues the certificate. A crash inside that transaction rolls
both back: the stages stay deactivated (without bytes, so they never serve again), no
certificate exists, the request stays ``executing`` and a retry finishes it, with one
``stages.destroyed`` event.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from governance.certificates.claims import certificate_claims_check
from governance.models import AuditEvent, DeletionCertificate, ErasureRequest, Stage
from governance.services import erasure, erasure_execution
from tests.governance import test_erasure_queries
from tests.governance.test_erasure_queries import SMALL, build

artifacts = test_erasure_queries.artifacts  # the fixture: files and keys in tmp_path


def test_a_crash_in_the_certificate_transaction_keeps_stages_unmarked_until_the_retry(
    officer, artifacts, monkeypatch, django_capture_on_commit_callbacks
):
    ref = build("crash", **SMALL)
    request, _ = erasure.erasure_request_create(
        actor=officer.user, subject_ref=ref, channel="email"
    )
    with django_capture_on_commit_callbacks(execute=False):
        erasure.erasure_request_approve(actor=officer.user, request=request)

    def sign_crashes(body):
        raise OSError("worker lost while signing")

    with monkeypatch.context() as patch:
        patch.setattr(erasure_execution, "certificate_sign", sign_crashes)
        with pytest.raises(OSError, match="signing"):
            erasure_execution.erasure_request_execute(request_id=request.pk)

    execution = ErasureRequest.objects.get(pk=request.pk)
    assert execution.status == "executing"
    ids = [i for m in execution.execution["models"] for i in m["stages"]]
    stages = Stage.objects.filter(pk__in=ids)
    assert len(ids) == 2
    assert set(stages.values_list("state", flat=True)) == {"deactivated"}  # rolled back
    assert not any((Path(settings.ARTIFACT_ROOT) / s.artifact_key).exists() for s in stages)
    assert not DeletionCertificate.objects.filter(request=request.pk).exists()
    assert not AuditEvent.objects.filter(action="stages.destroyed").exists()

    assert erasure_execution.erasure_request_execute(request_id=request.pk) == "completed"

    assert set(stages.values_list("state", flat=True)) == {"destroyed"}
    assert AuditEvent.objects.filter(action="stages.destroyed").count() == 1
    envelope = DeletionCertificate.objects.get(request=request.pk).envelope
    assert all(c["ok"] for c in certificate_claims_check(envelope))
    claimed = [s["id"] for m in envelope["certificate"]["models"] for s in m["stages_deactivated"]]
    assert sorted(claimed) == sorted(ids)
