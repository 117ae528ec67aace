"""Keys shared by every process: the signing key from configuration, the one rule that a
shared deployment configures every key (signing, audit, SECRET_KEY) or refuses to start,
and key rotation, after which certificates signed by the old key still verify.

Every test points the embedded key files at its own tmp_path, so nothing is written to var/.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings

from governance.audit_key import audit_key, audit_key_cache_clear, audit_key_check
from governance.canonical import canonical_bytes
from governance.certificates.keys import (
    certificate_verify_stored,
    registered_public_key,
    signing_key_register,
)
from governance.certificates.signing import (
    SigningKeyError,
    certificate_sign,
    certificate_verify,
    key_id,
    signer_key_id,
    signing_key,
    signing_key_cache_clear,
    signing_key_check,
)
from governance.key_files import key_required
from governance.models import DeletionCertificate, SigningKey
from governance.secret_key import secret_key_check, secret_key_lazy
from governance.services.audit_integrity import audit_chain_verify
from tests.governance import web_helpers
from tests.governance.api_helpers import API
from tests.governance.test_erasure import approve_and_run, file
from tests.governance.web_helpers import busiest_subject

REPO = Path(__file__).resolve().parents[2]
KEY_VARIABLES = (
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "LETHE_SIGNING_KEY",
    "LETHE_SIGNING_KEY_FILE",
    "LETHE_AUDIT_KEY",
    "LETHE_AUDIT_KEY_FILE",
    "LETHE_ARTIFACTS_S3_BUCKET",
    "LETHE_SHARED_DEPLOYMENT",
    "DEBUG",
    "CELERY_BROKER_URL",
)
artifacts = web_helpers.artifacts
trained = web_helpers.trained


@pytest.fixture(autouse=True)
def embedded_keys(settings, tmp_path):
    """No key configured, key files in tmp_path, one machine: the embedded default."""
    settings.LETHE_SIGNING_KEY = None
    settings.LETHE_SIGNING_KEY_FILE = None
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    settings.LETHE_AUDIT_KEY_PATH = tmp_path / "keys" / "audit.key"
    settings.LETHE_SHARED_DEPLOYMENT = False
    signing_key_cache_clear()
    audit_key_cache_clear()
    yield
    signing_key_cache_clear()
    audit_key_cache_clear()


@pytest.fixture
def shared(settings):
    """Many machines (what LETHE_ARTIFACTS_S3_BUCKET implies), DEBUG off."""
    settings.LETHE_SHARED_DEPLOYMENT = True
    settings.DEBUG = False
    return settings


def new_pem() -> tuple[str, str]:
    """A fresh Ed25519 private key as PKCS#8 PEM text, and its key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii"), key_id(key.public_key())


def minimal_body(**changes) -> dict:
    return {"certificate_id": "c-1", "request_id": 1, "signing_key_id": signer_key_id()} | changes


# --- the signing key from configuration -----------------------------------------------------


def test_pem_from_the_environment_is_the_signing_key(settings, tmp_path):
    pem, expected = new_pem()
    settings.LETHE_SIGNING_KEY = pem

    assert key_id(signing_key().public_key()) == expected
    assert certificate_verify(certificate_sign(minimal_body())).ok
    assert not (tmp_path / "keys").exists()  # no key file made up


def test_pem_written_on_one_line_with_escaped_newlines_is_accepted(settings):
    pem, expected = new_pem()
    settings.LETHE_SIGNING_KEY = pem.strip().replace("\n", "\\n")

    assert signer_key_id() == expected


def test_pem_file_is_the_signing_key_and_the_environment_comes_first(settings, tmp_path):
    pem, from_file = new_pem()
    path = tmp_path / "operator" / "signing.pem"
    path.parent.mkdir()
    path.write_text(pem)
    settings.LETHE_SIGNING_KEY_FILE = str(path)

    assert signer_key_id() == from_file
    assert not (tmp_path / "keys").exists()

    other, from_env = new_pem()
    settings.LETHE_SIGNING_KEY = other
    assert signer_key_id() == from_env


def test_a_missing_key_file_is_an_error_and_is_never_created(settings, tmp_path):
    path = tmp_path / "absent.pem"
    settings.LETHE_SIGNING_KEY_FILE = str(path)

    with pytest.raises(SigningKeyError, match="LETHE_SIGNING_KEY_FILE") as raised:
        signing_key_check()

    assert "never creates" in str(raised.value)
    assert not path.exists()


@pytest.mark.parametrize(
    "text",
    [
        "not a pem at all",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
    ],
)
def test_a_malformed_pem_in_the_environment_is_a_clear_error(settings, text):
    settings.LETHE_SIGNING_KEY = text

    with pytest.raises(SigningKeyError, match="LETHE_SIGNING_KEY is not an unencrypted PEM"):
        signing_key_check()  # at start-up, not at the first signature


def test_a_malformed_pem_file_is_a_clear_error_naming_the_file(settings, tmp_path):
    path = tmp_path / "bad.pem"
    path.write_text("garbage\n")
    settings.LETHE_SIGNING_KEY_FILE = str(path)

    with pytest.raises(SigningKeyError, match="LETHE_SIGNING_KEY_FILE") as raised:
        signing_key()

    assert str(path) in str(raised.value)
    assert path.read_text() == "garbage\n"


# --- a shared deployment configures every key, or refuses to start ------------------------


def test_shared_deployment_without_a_signing_key_refuses(shared, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="LETHE_SIGNING_KEY") as raised:
        signing_key_check()
    with pytest.raises(ImproperlyConfigured, match="LETHE_SIGNING_KEY_FILE"):
        signing_key()  # and never makes a key of its own later either

    assert "shared deployment" in str(raised.value)
    assert not (tmp_path / "keys").exists()


def test_shared_deployment_with_a_configured_signing_key_starts(shared):
    pem, expected = new_pem()
    shared.LETHE_SIGNING_KEY = pem

    signing_key_check()

    assert signer_key_id() == expected


def test_debug_on_or_one_machine_keeps_the_embedded_key_file(settings, tmp_path):
    settings.LETHE_SHARED_DEPLOYMENT = True
    settings.DEBUG = True
    signing_key_check()
    audit_key_check()
    secret_key_check()
    assert not (tmp_path / "keys").exists()  # the checks create nothing

    settings.DEBUG = False
    settings.LETHE_SHARED_DEPLOYMENT = False
    signing_key_check()
    signing_key()
    assert (tmp_path / "keys" / "signing.pem").is_file()  # made on first use, as before


def test_shared_deployment_without_an_audit_key_refuses(shared, tmp_path):
    shared.LETHE_AUDIT_KEY = None

    with pytest.raises(ImproperlyConfigured, match="LETHE_AUDIT_KEY or LETHE_AUDIT_KEY_FILE"):
        audit_key_check()
    with pytest.raises(ImproperlyConfigured, match="LETHE_AUDIT_KEY"):
        audit_key()
    assert not (tmp_path / "keys").exists()

    shared.LETHE_AUDIT_KEY = "k" * 40
    audit_key_check()
    assert audit_key() == b"k" * 40


def test_shared_deployment_without_secret_key_refuses(tmp_path):
    path = tmp_path / "keys" / "django-secret.key"
    # The shared deployment is left first: restoring SECRET_KEY reads (and so evaluates)
    # the lazy key, which a shared deployment refuses.
    with (
        override_settings(SECRET_KEY=secret_key_lazy(path)),
        override_settings(LETHE_SHARED_DEPLOYMENT=True, DEBUG=False),
    ):
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY or SECRET_KEY_FILE"):
            secret_key_check()
        assert not path.exists()
    with override_settings(SECRET_KEY="s" * 64, LETHE_SHARED_DEPLOYMENT=True, DEBUG=False):
        secret_key_check()


def test_the_rule_is_one_function_and_names_what_to_set(shared):
    key_required("x", configured=True, variables="X")  # configured: nothing to say

    with pytest.raises(ImproperlyConfigured) as raised:
        key_required("the thing key", configured=False, variables="THING_KEY")

    message = str(raised.value)
    assert message.startswith("the thing key is not configured")
    assert "Set THING_KEY, the same on every machine" in message
    assert "LETHE_ARTIFACTS_S3_BUCKET" in message


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py ARGS`` in a fresh process: no key in its environment but ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    base |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LETHE_SECRET_KEY_PATH": str(tmp_path / "keys" / "django-secret.key"),
        "LETHE_SIGNING_KEY_PATH": str(tmp_path / "keys" / "signing.pem"),
        "LETHE_AUDIT_KEY_PATH": str(tmp_path / "keys" / "audit.key"),
        "LETHE_BROKER_DIR": str(tmp_path / "broker"),
    }
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_process_of_a_shared_deployment_without_keys_refuses_to_start(tmp_path):
    result = _manage(tmp_path, "check", LETHE_ARTIFACTS_S3_BUCKET="x")

    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert "LETHE_SIGNING_KEY (PEM text) or LETHE_SIGNING_KEY_FILE" in result.stderr
    assert not (tmp_path / "keys").exists()


def test_a_process_of_a_shared_deployment_with_every_key_starts(tmp_path):
    pem, _ = new_pem()
    result = _manage(
        tmp_path,
        "check",
        LETHE_SHARED_DEPLOYMENT="true",
        LETHE_SIGNING_KEY=pem,
        LETHE_AUDIT_KEY="a" * 40,
        SECRET_KEY="s" * 64,
    )

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "keys").exists()


# --- the registry and rotation -------------------------------------------------------------


@pytest.mark.django_db
def test_registering_a_key_is_idempotent(settings):
    pem, expected = new_pem()
    settings.LETHE_SIGNING_KEY = pem

    assert signing_key_register() == expected
    first = SigningKey.objects.get()
    assert signing_key_register() == expected

    assert list(SigningKey.objects.all()) == [first]
    assert first.key_id == expected
    assert first.algorithm == "Ed25519"


@pytest.mark.django_db(transaction=True)
def test_processes_registering_one_key_at_once_leave_one_row(settings):
    pem, expected = new_pem()
    settings.LETHE_SIGNING_KEY = pem
    barrier = threading.Barrier(4)
    ids: list[str] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            barrier.wait()
            with transaction.atomic():  # as inside the transaction that issues a certificate
                ids.append(signing_key_register())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert ids == [expected] * 4
    assert list(SigningKey.objects.values_list("key_id", flat=True)) == [expected]


@pytest.mark.django_db
def test_rotation_keeps_certificates_of_the_old_key_verifiable(settings, client):
    old_pem, old_id = new_pem()
    settings.LETHE_SIGNING_KEY = old_pem
    signing_key_register()
    envelope = certificate_sign(minimal_body())

    new_pem_text, new_id = new_pem()
    settings.LETHE_SIGNING_KEY = new_pem_text

    assert signer_key_id() == new_id
    assert not certificate_verify(envelope).ok  # the current key alone cannot
    check = certificate_verify_stored(envelope)
    assert (check.ok, check.key_id, check.reason) == (True, old_id, "")
    assert key_id(registered_public_key(old_id)) == old_id
    assert key_id(registered_public_key(new_id)) == new_id
    assert registered_public_key("ed25519:" + "0" * 16) is None
    listed = client.get(f"{API}/certificates/public-keys/").json()
    assert [(k["key_id"], k["current"]) for k in listed] == [(old_id, False), (new_id, True)]
    assert listed[1]["first_used_at"] is None  # the new key has signed nothing yet
    # The single-key endpoint keeps its fields, and names the key signing now.
    single = client.get(f"{API}/certificates/public-key/").json()
    assert set(single) == {"key_id", "algorithm", "public_key_pem", "public_key_raw"}
    assert single["key_id"] == new_id


@pytest.mark.django_db
def test_a_registry_key_is_checked_like_any_given_key(settings):
    old_pem, old_id = new_pem()
    settings.LETHE_SIGNING_KEY = old_pem
    signing_key_register()
    envelope = certificate_sign(minimal_body())
    settings.LETHE_SIGNING_KEY = new_pem()[0]
    envelope["certificate"]["request_id"] = 2

    check = certificate_verify_stored(envelope)

    assert not check.ok
    assert check.key_id == old_id
    assert "does not match the certificate" in check.reason


@pytest.mark.django_db
def test_a_key_id_that_never_signed_here_fails_with_a_reason(settings):
    foreign = Ed25519PrivateKey.generate()
    foreign_id = key_id(foreign.public_key())
    body = minimal_body(signing_key_id=foreign_id)
    envelope = {
        "certificate": body,
        "signature": {
            "algorithm": "Ed25519",
            "key_id": foreign_id,
            "value": base64.b64encode(foreign.sign(canonical_bytes(body))).decode(),
        },
    }

    check = certificate_verify_stored(envelope)

    assert not check.ok
    assert check.key_id == foreign_id
    assert f"signature.key_id {foreign_id!r} is unknown here" in check.reason


@pytest.mark.django_db
def test_public_keys_lists_the_current_key_before_it_signs(client):
    listed = client.get(f"{API}/certificates/public-keys/")

    assert listed.status_code == 200  # public, no login
    (key,) = listed.json()
    assert key["key_id"] == signer_key_id()
    assert key["current"] is True
    assert key["first_used_at"] is None
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert len(base64.b64decode(key["public_key_raw"])) == 32


def test_an_erased_certificate_verifies_after_rotation(
    settings, officer, auditor, integration, trained, tmp_path, django_capture_on_commit_callbacks
):
    """The whole path: a real certificate signed by key A, rotate to B, both ways verify."""
    from django.apps import apps

    old_pem, old_id = new_pem()
    settings.LETHE_SIGNING_KEY = old_pem
    req = file(integration.client, busiest_subject(trained["model"])).json()["id"]
    approve_and_run(officer, req, django_capture_on_commit_callbacks)
    stored = DeletionCertificate.objects.get(request=req)
    assert stored.key_id == old_id
    assert SigningKey.objects.get().key_id == old_id  # registered as it signed
    # An installation that signed before the registry existed: migration 0010 registers
    # the key those certificates name, so a later rotation keeps them verifiable.
    SigningKey.objects.all().delete()
    migration = importlib.import_module("governance.migrations.0010_signing_keys")
    migration.register_current_key(apps, None)
    (registered,) = SigningKey.objects.all()
    assert registered.key_id == old_id
    assert registered.first_used_at <= stored.issued_at
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(stored.envelope))

    new_pem_text, new_id = new_pem()
    settings.LETHE_SIGNING_KEY = new_pem_text
    out = io.StringIO()
    call_command("verify_certificate", str(path), stdout=out)
    verified = auditor.client.post(
        f"{API}/certificates/verify/", stored.envelope, format="json"
    ).json()
    listed = auditor.client.get(f"{API}/certificates/public-keys/").json()

    assert f"signature OK: {old_id}" in out.getvalue()
    assert "claims OK" in out.getvalue()
    assert verified["ok"] is True, verified
    assert verified["signature"] == {"ok": True, "key_id": old_id, "reason": None}
    assert [(k["key_id"], k["current"]) for k in listed] == [(old_id, False), (new_id, True)]
    assert listed[0]["first_used_at"] is not None
    # Offline there is no registry: only the old public key, given by hand, verifies it.
    with pytest.raises(CommandError, match="does not match the verifying key"):
        call_command("verify_certificate", str(path), "--offline", stdout=io.StringIO())
    old_public = tmp_path / "old.pem"
    old_public.write_text(listed[0]["public_key_pem"])
    call_command(
        "verify_certificate", str(path), "--offline", "--public-key", str(old_public), stdout=out
    )
    # The audit trail's anchors signed by the old key (the certificate and its checkpoint)
    # are still checked after the rotation, not set aside as signed by an unknown key.
    report = audit_chain_verify()
    assert report.ok, report.reason
    assert (report.certificates_checked, report.checkpoints_checked) == (1, 1)
    assert report.warnings == ()
