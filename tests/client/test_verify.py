"""Offline verification in the client agrees with the server, byte for byte.

The client re-derives the canonical bytes without importing governance; these tests hold
the two to the same bytes and the same refusals, and check that an envelope the server
signed verifies with only its public key PEM, and that every kind of tampering fails.
"""

from __future__ import annotations

import copy

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.canonical import canonical_bytes as server_canonical_bytes
from governance.certificates.signing import certificate_sign, public_key_info
from lethe_client import DuplicateKeyError, canonical_bytes, parse_envelope, verify_envelope

VALUES = [
    {},
    {"b": 1, "a": [True, False, None], "c": {"z": "", "y": -(2**53 - 1)}},
    {"text": "Zoë 東京 \u2028 \U0001f600", "ctl": '\x00\x01\n\r\t\b\f\x1f"\\/', "n": 2**53 - 1},
    {"é": 1, "e": 2, "\U0001f600": 3, "\ue000": 4, "Z": [[], [{}], [1, [2, [3]]]]},
]
REFUSED = [
    {"x": 1.0},
    {"x": 2**53},
    {"x": "\ud800"},
    {"x": (1, 2)},
    {1: "non-string key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_canonical_bytes_equal_the_servers(value):
    assert canonical_bytes(value) == server_canonical_bytes(value)


@pytest.mark.parametrize("value", REFUSED)
def test_canonical_bytes_refuse_what_the_server_refuses(value):
    with pytest.raises(ValueError, match=r"^\$") as server:
        server_canonical_bytes(value)
    with pytest.raises(ValueError, match=r"^\$") as client:
        canonical_bytes(value)
    assert str(client.value) == str(server.value)


@pytest.fixture
def signed(settings, tmp_path):
    """An envelope signed by the server's own code, and the PEM of its public key."""
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    body = {
        "type": "lethe.erasure-certificate/v1",
        "certificate_id": "5f1c",
        "request_id": 7,
        "subject_ref": "Zoë-42",
        "records_erased": ["r-1", "r-2"],
        "models": [{"model_id": 3, "serving_depth_after": {"0": 1, "1": 0}}],
    }
    return certificate_sign(body), public_key_info()["public_key_pem"]


def test_server_signed_envelope_verifies_with_only_the_pem(signed):
    envelope, pem = signed
    check = verify_envelope(envelope, pem)
    assert check.ok, check.reason
    assert check.key_id == envelope["signature"]["key_id"]
    assert check.certificate["request_id"] == 7


def _other_pem() -> bytes:
    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda e: e["certificate"]["records_erased"].pop(), "does not match the certificate"),
        (lambda e: e["certificate"].update(request_id=8), "does not match the certificate"),
        (lambda e: e.update(note="unsigned"), "unsigned extra fields"),
        (lambda e: e["signature"].update(algorithm="RS256"), "signature.algorithm"),
        (lambda e: e["signature"].update(value="not base64!"), "not valid standard base64"),
        (lambda e: e["signature"].update(key_id="ed25519:0000000000000000"), "does not match"),
        (lambda e: e["certificate"].update(signing_key_id="ed25519:1"), "signing_key_id"),
        (lambda e: e["certificate"].update(score=0.5), "float"),
        (lambda e: e.pop("signature"), "envelope.signature is missing"),
    ],
)
def test_tampered_envelope_fails_with_a_reason(signed, tamper, reason):
    envelope, pem = signed
    altered = copy.deepcopy(envelope)
    tamper(altered)
    check = verify_envelope(altered, pem)
    assert not check.ok
    assert reason in check.reason


def test_wrong_key_or_bad_pem_fails(signed):
    envelope, _ = signed
    assert "does not match the verifying key" in verify_envelope(envelope, _other_pem()).reason
    bad = verify_envelope(envelope, "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    assert not bad.ok
    assert bad.key_id == ""
    assert verify_envelope("not an envelope", _other_pem()).reason.startswith("envelope is a str")


def test_duplicate_keys_are_refused():
    with pytest.raises(DuplicateKeyError, match="'a'"):
        parse_envelope('{"a": 1, "a": 2}')
    assert parse_envelope('{"a": {"b": 1}}') == {"a": {"b": 1}}
