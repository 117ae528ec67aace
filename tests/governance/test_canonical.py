"""The one canonical JSON form: the bytes every hash and signature covers stay the bytes
Lethe wrote before it had one module for them, and the fingerprint migration keeps replayed
Idempotency-Keys matching."""

from __future__ import annotations

import hashlib
import importlib
import json
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.db import transaction

from governance.canonical import canonical_bytes
from governance.errors import ApplicationError
from governance.models import AuditEvent, ErasureRequest, ServingManifest
from governance.services import erasure
from governance.services.audit import audit_event_append, canonical_event
from governance.services.serving import manifest_digest
from tests.governance import web_helpers

artifacts = web_helpers.artifacts
trained = web_helpers.trained
fingerprints = importlib.import_module("governance.migrations.0005_erasure_fingerprint_canonical")


def documented(value):
    """The recipe docs/certificates.md gives verifiers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"b": 1, "a": "Zoë\n", "c": [True, None, {"z": -2, "y": "李"}]},
        {"quote": '"\\', "controls": "\x00\x1f\x7f\u2028", "emoji": "🙂"},
        {"depths": {"10": 1, "2": 3}, "nested": [[], [{}], [[-(2**53 - 1)]]]},
    ],
)
def test_canonical_bytes_are_the_documented_form(value):
    assert canonical_bytes(value) == documented(value)


def test_manifest_digests_keep_their_bytes(trained):
    """Manifest digests used ensure_ascii=True; their entries are numbers and ASCII text, so
    the canonical form (ensure_ascii=False) hashes the very same bytes."""
    manifests = list(ServingManifest.objects.filter(model=trained["model"]))
    assert manifests
    for manifest in manifests:
        body = {"model": manifest.model_id, "generation": manifest.generation}
        body["entries"] = manifest.entries
        before = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert before.isascii()
        assert canonical_bytes(body) == before
        assert manifest_digest(manifest.model_id, manifest.generation, manifest.entries) == (
            manifest.digest
        )
        assert manifest.digest == "sha256:" + hashlib.sha256(before).hexdigest()


@pytest.mark.django_db
def test_audit_hashes_keep_their_bytes():
    with transaction.atomic():
        event = audit_event_append(
            actor="test", action="thing.happened", payload={"note": "ünïcode ✓", "n": [1, 2]}
        )
    body = {
        "seq": event.seq,
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "payload": event.payload,
        "prev_hash": event.prev_hash,
    }
    assert event.hash == hashlib.sha256(documented(body)).hexdigest()


def test_an_audit_event_with_a_float_has_no_canonical_bytes():
    with pytest.raises(ValueError, match=r"\$\.payload\.ratio"):
        canonical_event(
            seq=1,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            actor="test",
            action="a",
            object_type="",
            object_id="",
            payload={"ratio": 0.5},
            prev_hash="0" * 64,
        )


@pytest.mark.django_db
def test_a_float_payload_is_refused_before_anything_is_written():
    with pytest.raises(ValueError, match="float"), transaction.atomic():
        audit_event_append(actor="test", action="a", payload={"ratio": 0.5})
    assert not AuditEvent.objects.exists()


# --- the fingerprint migration -----------------------------------------------------------


def _legacy_fingerprint(request):
    body = {"subject_ref": request.subject_ref, "reason": request.reason, "channel": "api"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _file(integration):
    return erasure.erasure_request_create(
        actor=integration.user, subject_ref="subj-ü", reason="Löschung, bitte", idempotency_key="k1"
    )


def test_fingerprint_migration_keeps_a_replayed_key_matching(integration):
    request, created = _file(integration)
    assert created
    updated_at = request.updated_at

    fingerprints.backwards(apps, None)  # the row as the code before the upgrade stored it
    request.refresh_from_db()
    assert request.fingerprint == _legacy_fingerprint(request)
    with pytest.raises(ApplicationError) as refused:
        _file(integration)
    assert refused.value.code == "idempotency_conflict"

    fingerprints.forwards(apps, None)

    replayed, created = _file(integration)
    assert (replayed.pk, created) == (request.pk, False)
    assert replayed.fingerprint != _legacy_fingerprint(request)
    assert replayed.updated_at == updated_at  # the stuck-request sweeper reads updated_at


def test_fingerprint_migration_leaves_rows_without_a_fingerprint(integration):
    request, _ = _file(integration)
    ErasureRequest.objects.filter(pk=request.pk).update(fingerprint="")

    fingerprints.forwards(apps, None)

    assert ErasureRequest.objects.get(pk=request.pk).fingerprint == ""
