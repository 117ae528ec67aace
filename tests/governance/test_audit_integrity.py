"""The trail cannot be silently shortened or extended: TRUNCATE refused, keyed events, and
verification against signed checkpoints and certificates (governance.services.audit_integrity).

Each attack is carried out as a person with database access would: raw SQL past the
append-only triggers (``_tamper``), hashes recomputed with the public algorithm, MACs with a
key that is not the server's.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from governance.audit_key import audit_mac
from governance.models import AuditCheckpoint, AuditEvent, DeletionCertificate
from governance.services import erasure_execution
from governance.services.audit import event_hash
from governance.services.audit_integrity import audit_chain_verify, audit_checkpoint_create
from tests.governance import web_helpers
from tests.governance.api_helpers import API
from tests.governance.test_audit import _append, _tamper

MANUAL = AuditCheckpoint.Reason.MANUAL
MALLORY_KEY = b"not-the-server-key-but-long-enough-to-look-real"

pytestmark = pytest.mark.django_db
artifacts = web_helpers.artifacts  # signing key and artifacts in tmp_path


def _checkpoint(reason=MANUAL):
    with transaction.atomic():
        return audit_checkpoint_create(reason=reason)


def _forge(event: AuditEvent) -> None:
    """Give ``event`` a consistent hash and the MAC a forger without the key can make."""
    event.hash = event_hash(event)
    event.mac = hmac.new(MALLORY_KEY, event.hash.encode(), hashlib.sha256).hexdigest()


def _insert(event: AuditEvent) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO governance_auditevent (seq, created_at, actor, action, object_type, "
            "object_id, payload, prev_hash, hash, mac) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s)",
            [
                event.seq,
                event.created_at,
                event.actor,
                event.action,
                event.object_type,
                event.object_id,
                '{"note": "forged"}',
                event.prev_hash,
                event.hash,
                event.mac,
            ],
        )


# --- TRUNCATE ---------------------------------------------------------------------------


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite has no TRUNCATE")
@pytest.mark.parametrize("table", ["governance_auditevent", "governance_auditcheckpoint"])
def test_truncate_is_refused(table):
    _append(2)
    _checkpoint()
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.count() == 2
    assert AuditCheckpoint.objects.count() == 1


# --- keyed events -------------------------------------------------------------------------


def test_events_carry_the_servers_mac():
    _append(2)
    for event in AuditEvent.objects.all():
        assert event.mac == audit_mac(event.hash)
        assert event.mac != hmac.new(MALLORY_KEY, event.hash.encode(), hashlib.sha256).hexdigest()


def test_a_correctly_chained_forged_append_is_named():
    _append(3)
    last = AuditEvent.objects.get(seq=3)
    forged = AuditEvent(
        seq=4,
        created_at=last.created_at,
        actor="user:mallory",
        action="erasure.completed",
        object_type="erasurerequest",
        object_id="1",
        payload={"note": "forged"},
        prev_hash=last.hash,
    )
    _forge(forged)
    _insert(forged)

    report = audit_chain_verify()

    assert (report.ok, report.first_bad_seq, report.checked) == (False, 4, 3)
    assert "MAC" in report.reason


def test_a_rehashed_suffix_is_named_where_it_starts():
    _append(5)
    prev = AuditEvent.objects.get(seq=2).hash
    for event in list(AuditEvent.objects.filter(seq__gte=3).order_by("seq")):
        if event.seq == 3:
            event.actor = "user:mallory"
        event.prev_hash = prev
        _forge(event)
        _tamper(
            "UPDATE governance_auditevent SET actor = %s, prev_hash = %s, hash = %s, mac = %s "
            "WHERE seq = %s",
            [event.actor, event.prev_hash, event.hash, event.mac, event.seq],
        )
        prev = event.hash

    report = audit_chain_verify()

    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "MAC" in report.reason


# --- checkpoints ----------------------------------------------------------------------------


def test_a_deleted_tail_is_named_by_the_latest_checkpoint():
    _append(5)
    checkpoint = _checkpoint()
    assert (checkpoint.seq, checkpoint.hash) == (5, AuditEvent.objects.get(seq=5).hash)
    _append(2)
    assert audit_chain_verify().ok

    _tamper("DELETE FROM governance_auditevent WHERE seq >= %s", [4])

    report = audit_chain_verify()
    assert (report.ok, report.first_bad_seq, report.head_seq) == (False, 4, 3)
    assert "truncated" in report.reason
    assert f"checkpoint {checkpoint.pk}" in report.reason
    assert "#5" in report.reason


def test_a_suffix_rehashed_with_the_key_still_differs_from_the_checkpoint():
    """An insider holding the audit key but not the signing key: the MACs are right, the
    signed checkpoint is not."""
    _append(4)
    _checkpoint()
    event = AuditEvent.objects.get(seq=4)
    event.actor = "user:mallory"
    event.hash = event_hash(event)
    _tamper(
        "UPDATE governance_auditevent SET actor = %s, hash = %s, mac = %s WHERE seq = 4",
        [event.actor, event.hash, audit_mac(event.hash)],
    )

    report = audit_chain_verify()

    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "is not the event checkpoint" in report.reason


def test_a_forged_checkpoint_is_named():
    _append(2)
    checkpoint = _checkpoint()
    _tamper("UPDATE governance_auditcheckpoint SET seq = 9 WHERE id = %s", [checkpoint.pk])

    report = audit_chain_verify()

    assert not report.ok
    assert "signature does not verify" in report.reason


def test_a_scheduled_checkpoint_is_skipped_when_the_head_has_not_moved():
    _append(1)
    assert _checkpoint(AuditCheckpoint.Reason.SCHEDULED) is not None
    assert _checkpoint(AuditCheckpoint.Reason.SCHEDULED) is None
    _append(1)
    assert _checkpoint(AuditCheckpoint.Reason.SCHEDULED).seq == 2


def test_an_empty_trail_gets_no_checkpoint():
    assert _checkpoint() is None


# --- certificates ---------------------------------------------------------------------------


def _complete_an_erasure(officer, integration, capture):
    request = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": "never-seen"}, format="json"
    ).json()
    with capture(execute=False):
        response = officer.client.post(f"{API}/erasure-requests/{request['id']}/approve/")
    assert response.status_code == 200, response.content
    assert erasure_execution.erasure_request_execute(request_id=request["id"]) == "completed"
    return DeletionCertificate.objects.get(request=request["id"])


@pytest.mark.usefixtures("artifacts")
def test_each_certificate_is_checkpointed_and_cross_checked(
    officer, integration, django_capture_on_commit_callbacks
):
    certificate = _complete_an_erasure(officer, integration, django_capture_on_commit_callbacks)
    completed = AuditEvent.objects.get(action="erasure.completed")
    checkpoint = AuditCheckpoint.objects.get(reason=AuditCheckpoint.Reason.CERTIFICATE)
    assert (checkpoint.seq, checkpoint.hash) == (completed.seq, completed.hash)
    head = certificate.envelope["certificate"]["audit_chain_head"]
    assert head["seq"] == completed.seq - 1

    report = audit_chain_verify()
    assert report.ok, report.reason
    assert (report.certificates_checked, report.checkpoints_checked) == (1, 1)


@pytest.mark.usefixtures("artifacts")
def test_a_tail_cut_with_its_checkpoints_is_named_by_the_certificate(
    officer, integration, django_capture_on_commit_callbacks
):
    certificate = _complete_an_erasure(officer, integration, django_capture_on_commit_callbacks)
    completed = AuditEvent.objects.get(action="erasure.completed")
    _tamper("DELETE FROM governance_auditcheckpoint", [])
    _tamper("DELETE FROM governance_auditevent WHERE seq >= %s", [completed.seq])

    report = audit_chain_verify()

    assert not report.ok
    assert str(certificate.certificate_id) in report.reason
    assert "no erasure.completed event" in report.reason


@pytest.mark.usefixtures("artifacts")
def test_a_completion_event_without_its_certificate_is_named(
    officer, integration, django_capture_on_commit_callbacks
):
    certificate = _complete_an_erasure(officer, integration, django_capture_on_commit_callbacks)
    completed = AuditEvent.objects.get(action="erasure.completed")
    _tamper("DELETE FROM governance_deletioncertificate WHERE id = %s", [certificate.pk])

    report = audit_chain_verify()

    assert (report.ok, report.first_bad_seq) == (False, completed.seq)
    assert "which is missing" in report.reason


# --- the command ----------------------------------------------------------------------------


def test_command_checks_an_expected_head_held_outside_the_database():
    _append(3)
    head = AuditEvent.objects.get(seq=3)
    call_command("verify_audit_chain", expect=f"3:{head.hash}")
    _tamper("DELETE FROM governance_auditevent WHERE seq = %s", [3])
    with pytest.raises(CommandError, match="truncated"):
        call_command("verify_audit_chain", expect=f"3:{head.hash}")


def test_command_writes_a_checkpoint_after_a_clean_verification():
    _append(2)
    call_command("verify_audit_chain", checkpoint=True)
    assert AuditCheckpoint.objects.get().reason == MANUAL


@pytest.mark.parametrize("value", ["3", "x:abc", "3:" + "z" * 64])
def test_command_refuses_a_malformed_expect(value):
    with pytest.raises(CommandError, match="--expect"):
        call_command("verify_audit_chain", expect=value)


# --- the key --------------------------------------------------------------------------------


def test_without_a_setting_the_key_is_a_private_file_made_once(settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    from governance.audit_key import audit_key, audit_key_cache_clear

    settings.LETHE_AUDIT_KEY = None
    settings.LETHE_AUDIT_KEY_PATH = tmp_path / "keys" / "audit.key"
    audit_key_cache_clear()
    try:
        key = audit_key()
        assert settings.LETHE_AUDIT_KEY_PATH.stat().st_mode & 0o777 == 0o600
        audit_key_cache_clear()
        assert audit_key() == key  # read back, not made again
        settings.LETHE_AUDIT_KEY_PATH.write_text("short\n")
        audit_key_cache_clear()
        with pytest.raises(ImproperlyConfigured, match="fewer than 32"):
            audit_key()
    finally:
        audit_key_cache_clear()


def test_a_configured_key_must_be_long_enough(settings):
    from governance.audit_key import AuditKeyError, audit_key

    settings.LETHE_AUDIT_KEY = "too-short"
    with pytest.raises(AuditKeyError, match="at least 32"):
        audit_key()
