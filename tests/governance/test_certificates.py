"""Deletion certificates: Ed25519 over canonical JSON, the key file, and the PDF rendering.

No database: certificates are pure functions of a body and the key file, which every test
points at its own tmp_path (so nothing is written to var/keys).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.canonical import canonical_bytes
from governance.certificates import signing as certificates
from governance.certificates.pdf import certificate_pdf
from governance.certificates.signing import (
    ALGORITHM,
    SignatureCheck,
    SigningKeyError,
    certificate_sign,
    certificate_verify,
    key_id,
    public_key_info,
    signing_key,
    signing_key_cache_clear,
)
from governance.pdf import pdf_text

REPO = Path(__file__).resolve().parents[2]
OPENSSL = shutil.which("openssl")


@pytest.fixture(autouse=True)
def key_path(settings, tmp_path):
    """Every test signs with a fresh key in its own folder, never the repository's var/."""
    path = tmp_path / "keys" / "nested" / "signing-ed25519.pem"
    settings.LETHE_SIGNING_KEY_PATH = path
    signing_key_cache_clear()
    yield path
    signing_key_cache_clear()


def template_body() -> dict:
    """A body shaped like the one the erasure service issues (DESIGN §6)."""
    return {
        "certificate_id": "6f1c1f0e-8c6a-4a8e-9c4e-0d1f2a3b4c5d",
        "request_id": 48213,
        "subject_ref": "subj-kestrel-7",
        "records_erased": ["r1", "r2"],
        "records_found": 2,
        "models": [
            {
                "model_id": 3,
                "name": "tiny",
                "generation": 1,
                "stages_deactivated": [
                    {
                        "id": 5,
                        "shard": 0,
                        "prefix": "0-1",
                        "sequence": [0],
                        "position": 2,
                        "tensor_digest": "sha256:" + "ab" * 32,
                        "destroyed_at": "2026-03-01T12:00:00.123456+00:00",
                    }
                ],
                "manifest_before": {"version": 1, "digest": "sha256:" + "cd" * 32},
                "manifest_after": {"version": 2, "digest": "sha256:" + "ef" * 32},
                "serving_depth_after": {"0": 1, "1": 2},
                "i2_check": "passed",
            }
        ],
        "received_at": "2026-03-01T10:00:00.000000+00:00",
        "approved_at": "2026-03-01T11:00:00.000000+00:00",
        "executed_at": "2026-03-01T12:00:00.000000+00:00",
        "issued_at": "2026-03-01T12:00:01.000000+00:00",
        "audit_chain_head": {"seq": 40, "hash": "12" * 32},
        "issuer": "Lethe",
        "signing_key_id": "set by body()",
        "verified": True,
        "note": None,
    }


def body(**changes) -> dict:
    result = template_body() | changes
    result["signing_key_id"] = public_key_info()["key_id"]
    return result


def leaf_paths(value, path=()):
    """Every scalar in a JSON value, as a tuple of keys and indexes."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in leaf_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in leaf_paths(item, (*path, index))]
    return [path]


def altered(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return 0
    return value + "x"


def set_path(document, path, value):
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def other_key_pem() -> bytes:
    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def pdf_content(pdf: bytes) -> bytes:
    """The PDF's streams, inflated: page text appears as `(...) Tj` operators in them."""
    parts = []
    # The end-of-line before "endstream" stays in the match: a compressed stream can itself
    # end in a CR byte, which "\r?\n" would eat, truncating it. decompressobj leaves the
    # trailing end-of-line in unused_data instead of failing on it.
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            parts.append(zlib.decompressobj().decompress(match.group(1)))
        except zlib.error:
            parts.append(match.group(1))
    return b"\n".join(parts)


# --- Sign and verify --------------------------------------------------------------------


def test_signed_certificate_verifies_with_the_servers_key():
    envelope = certificate_sign(body())

    check = certificate_verify(envelope)

    assert check == SignatureCheck(ok=True, key_id=public_key_info()["key_id"], reason="")
    assert set(envelope) == {"certificate", "signature"}
    assert envelope["signature"]["algorithm"] == ALGORITHM == "Ed25519"
    assert envelope["signature"]["key_id"] == public_key_info()["key_id"]
    assert len(base64.b64decode(envelope["signature"]["value"], validate=True)) == 64


def test_envelope_verifies_after_a_json_round_trip_with_keys_reordered():
    envelope = certificate_sign(body())
    stored = json.loads(json.dumps(envelope, indent=2))
    stored["certificate"] = dict(reversed(list(stored["certificate"].items())))

    assert certificate_verify(stored).ok


def test_envelope_keeps_the_body_as_signed_when_the_caller_mutates_its_dict():
    original = body()
    envelope = certificate_sign(original)
    original["records_erased"].append("r3")
    original["request_id"] = 1

    assert envelope["certificate"]["records_erased"] == ["r1", "r2"]
    assert certificate_verify(envelope).ok


def test_sign_refuses_a_body_naming_another_signing_key():
    with pytest.raises(ValueError, match=r"signing_key_id"):
        certificate_sign(body() | {"signing_key_id": "ed25519:0000000000000000"})


@pytest.mark.parametrize("path", leaf_paths(template_body()), ids=str)
def test_changing_any_field_of_the_body_breaks_verification(path):
    envelope = certificate_sign(body())
    original = copy.deepcopy(envelope)
    set_path(envelope["certificate"], path, altered(_get(envelope["certificate"], path)))
    assert envelope != original

    check = certificate_verify(envelope)

    assert not check.ok
    expected = "signing_key_id" if path == ("signing_key_id",) else "does not match"
    assert expected in check.reason


def _get(document, path):
    for step in path:
        document = document[step]
    return document


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda b: b.update(extra="added"), id="field added"),
        pytest.param(lambda b: b.pop("subject_ref"), id="field removed"),
        pytest.param(lambda b: b.update(request_id="48213"), id="int became string"),
        pytest.param(lambda b: b["records_erased"].reverse(), id="list reordered"),
        pytest.param(lambda b: b["models"].append({}), id="model added"),
    ],
)
def test_structural_changes_to_the_body_break_verification(change):
    envelope = certificate_sign(body())
    change(envelope["certificate"])

    check = certificate_verify(envelope)

    assert not check.ok
    assert "does not match" in check.reason


def _flip_one_signature_byte(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[10] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("field", "change", "reason"),
    [
        ("value", _flip_one_signature_byte, "does not match"),
        ("key_id", lambda v: "ed25519:" + "0" * 16, "does not match the verifying key"),
        ("key_id", lambda v: v.upper(), "does not match the verifying key"),
        ("algorithm", lambda v: "RS256", "algorithm"),
        ("algorithm", lambda v: "ed25519", "algorithm"),
    ],
)
def test_changing_the_signature_key_id_or_algorithm_breaks_verification(field, change, reason):
    envelope = certificate_sign(body())
    envelope["signature"][field] = change(envelope["signature"][field])

    check = certificate_verify(envelope)

    assert not check.ok
    assert reason in check.reason


def test_verification_with_another_key_fails():
    envelope = certificate_sign(body())
    other = other_key_pem()

    check = certificate_verify(envelope, public_key_pem=other)

    assert not check.ok
    assert check.key_id != envelope["signature"]["key_id"]
    assert "does not match the verifying key" in check.reason


def test_relabelling_the_key_id_does_not_let_another_key_verify():
    envelope = certificate_sign(body())
    other = other_key_pem()
    other_id = certificate_verify({}, public_key_pem=other).key_id
    envelope["signature"]["key_id"] = other_id
    envelope["certificate"]["signing_key_id"] = other_id

    check = certificate_verify(envelope, public_key_pem=other)

    assert not check.ok
    assert "does not match the certificate" in check.reason


def test_certificate_signed_by_another_key_fails_against_the_servers_key():
    foreign = Ed25519PrivateKey.generate()
    foreign_id = key_id(foreign.public_key())
    document = body() | {"signing_key_id": foreign_id}
    envelope = {
        "certificate": document,
        "signature": {
            "algorithm": "Ed25519",
            "key_id": foreign_id,
            "value": base64.b64encode(foreign.sign(canonical_bytes(document))).decode(),
        },
    }
    foreign_pem = foreign.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    assert certificate_verify(envelope, public_key_pem=foreign_pem.decode()).ok
    check = certificate_verify(envelope)
    assert not check.ok
    assert "does not match the verifying key" in check.reason


def test_explicit_public_key_as_str_or_bytes_verifies():
    envelope = certificate_sign(body())
    pem = public_key_info()["public_key_pem"]

    assert certificate_verify(envelope, public_key_pem=pem).ok
    assert certificate_verify(envelope, public_key_pem=pem.encode()).ok


def _valid_signature() -> dict:
    return certificate_sign(body())["signature"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "not a JSON object"),
        (lambda: "certificate", "not a JSON object"),
        (lambda: [1, 2], "not a JSON object"),
        (lambda: 42, "not a JSON object"),
        (lambda: {}, "certificate is missing"),
        (lambda: {"certificate": body()}, "signature is missing"),
        (lambda: {"certificate": "text", "signature": _valid_signature()}, "certificate is"),
        (lambda: {"certificate": body(), "signature": "abc"}, "signature is missing or not"),
        (lambda: {"certificate": body(), "signature": {}}, "algorithm"),
        (
            lambda: {"certificate": body(), "signature": _valid_signature(), "note": "hi"},
            "unsigned extra fields",
        ),
        (
            lambda: {"certificate": body(), "signature": _valid_signature() | {"x": 1}},
            "unexpected fields",
        ),
        (
            lambda: {"certificate": body(), "signature": _valid_signature() | {"key_id": 7}},
            "key_id is missing or not a string",
        ),
        (
            lambda: {"certificate": body(), "signature": _without(_valid_signature(), "value")},
            "value is missing",
        ),
        (
            lambda: {"certificate": body(), "signature": _valid_signature() | {"value": 12}},
            "value is missing or not a string",
        ),
        (
            lambda: {"certificate": body(), "signature": _valid_signature() | {"value": "!!!"}},
            "not valid standard base64",
        ),
        (
            lambda: {"certificate": body(), "signature": _valid_signature() | {"value": "abc"}},
            "not valid standard base64",
        ),
        (
            lambda: {
                "certificate": body(),
                "signature": _valid_signature() | {"value": base64.b64encode(b"x" * 63).decode()},
            },
            "63 bytes",
        ),
        (
            lambda: {
                "certificate": body(),
                "signature": _valid_signature() | {"value": base64.b64encode(b"x" * 65).decode()},
            },
            "65 bytes",
        ),
        (
            lambda: {
                "certificate": body(request_id=1.5),
                "signature": _valid_signature(),
            },
            "cannot be canonicalised",
        ),
        (
            lambda: {"certificate": body() | {1: "int key"}, "signature": _valid_signature()},
            "cannot be canonicalised",
        ),
    ],
)
def test_malformed_envelopes_are_rejected_with_a_reason_and_never_raise(make, reason):
    check = certificate_verify(make())

    assert not check.ok
    assert reason in check.reason, check.reason
    assert check.key_id == public_key_info()["key_id"]


def _without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        ("not a key", "not a PEM"),
        (b"\xff\xfe", "not a PEM"),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=1024)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "not an Ed25519 key",
        ),
    ],
)
def test_unusable_public_key_gives_a_reason_not_an_exception(pem, reason):
    check = certificate_verify(certificate_sign(body()), public_key_pem=pem)

    assert not check.ok
    assert check.key_id == ""
    assert reason in check.reason


# --- Canonical form ---------------------------------------------------------------------


def test_canonical_bytes_are_sorted_compact_utf8():
    data = canonical_bytes({"b": 1, "a": "Zoë\n", "c": [True, None, {"z": -2, "y": "李"}]})

    assert data == '{"a":"Zoë\\n","b":1,"c":[true,null,{"y":"李","z":-2}]}'.encode()


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"ratio": 0.5}, "$.ratio"),
        ({"models": [{"score": 1.0}]}, "$.models[0].score"),
        ({"x": float("nan")}, "$.x"),
        ({"x": [0, float("inf")]}, "$.x[1]"),
        ({"x": (1, 2)}, "$.x"),
        ({"x": {1, 2}}, "$.x"),
        ({"x": b"bytes"}, "$.x"),
        ({"a": {"b": object()}}, "$.a.b"),
        ({"a": {2: "x"}}, "$.a"),
        ({"big": 2**53}, "$.big"),
        ({"s": "\ud800"}, "$.s"),
    ],
)
def test_canonical_bytes_rejects_what_has_no_single_json_text_naming_the_path(document, path):
    with pytest.raises(ValueError, match=re.escape(path)):
        canonical_bytes(document)


def test_canonical_bytes_rejects_a_circular_body():
    document: dict = {"a": []}
    document["a"].append(document)

    with pytest.raises(ValueError, match=r"\$\.a\[0\]: circular"):
        canonical_bytes(document)


def test_signing_a_body_with_a_float_is_refused():
    with pytest.raises(ValueError, match=r"\$\.models\[0\]\.generation"):
        certificate_sign(body(models=[{"generation": 1.0}]))


# --- The key file -----------------------------------------------------------------------


def test_key_file_is_created_once_with_mode_0600_and_reused(key_path):
    assert not key_path.parent.exists()

    first = public_key_info()["key_id"]
    pem = key_path.read_bytes()
    signing_key_cache_clear()
    again = public_key_info()["key_id"]

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert key_path.read_bytes() == pem
    assert again == first
    assert list(key_path.parent.iterdir()) == [key_path]  # no temporary files left


def test_key_is_cached_per_path_in_process(settings, key_path, tmp_path):
    first = signing_key()
    key_path.unlink()

    assert signing_key() is first
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "elsewhere.pem"
    assert key_id(signing_key().public_key()) != key_id(first.public_key())


def test_existing_key_file_is_loaded_not_replaced(key_path):
    key = Ed25519PrivateKey.generate()
    key_path.parent.mkdir(parents=True)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    assert public_key_info()["key_id"] == key_id(key.public_key())


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not an unencrypted PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not an unencrypted"),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "not an Ed25519 key",
        ),
    ],
)
def test_unusable_key_file_raises_an_error_naming_the_path(key_path, content, reason):
    key_path.parent.mkdir(parents=True)
    key_path.write_bytes(content)

    with pytest.raises(SigningKeyError, match=reason) as raised:
        signing_key()

    assert str(key_path) in str(raised.value)
    assert key_path.read_bytes() == content  # never overwritten


def test_process_that_loses_the_creation_race_uses_the_winners_key(key_path, monkeypatch):
    winner = Ed25519PrivateKey.generate()
    publish = certificates.publish_exclusively

    def other_process_wins_first(path, data):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            winner.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return publish(path, data)

    monkeypatch.setattr(certificates, "publish_exclusively", other_process_wins_first)

    assert key_id(signing_key().public_key()) == key_id(winner.public_key())
    assert list(key_path.parent.iterdir()) == [key_path]


def test_concurrent_creators_all_end_up_with_one_key(key_path):
    count = 12
    barrier = threading.Barrier(count)
    ids: list[str] = []
    errors: list[BaseException] = []

    def create():
        try:
            barrier.wait()
            # The uncached loader: each thread races on the file system as a process would.
            ids.append(key_id(certificates._signing_key_load_or_create(key_path).public_key()))
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(ids) == count
    assert set(ids) == {public_key_info()["key_id"]}
    assert list(key_path.parent.iterdir()) == [key_path]


def test_public_key_info_describes_the_signing_key():
    info = public_key_info()
    public = serialization.load_pem_public_key(info["public_key_pem"].encode())
    raw = base64.b64decode(info["public_key_raw"], validate=True)

    assert set(info) == {"key_id", "algorithm", "public_key_pem", "public_key_raw"}
    assert info["algorithm"] == "Ed25519"
    assert len(raw) == 32
    assert raw == public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert info["key_id"] == "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
    assert re.fullmatch(r"ed25519:[0-9a-f]{16}", info["key_id"])


# --- Third-party verification -----------------------------------------------------------


def _third_party_files(folder: Path, envelope_text: str) -> tuple[Path, Path, Path]:
    """What a verifier derives from the envelope's JSON text alone, as files for openssl."""
    envelope = json.loads(envelope_text)
    body_file, sig_file, pub_file = folder / "body.bin", folder / "sig.bin", folder / "pub.pem"
    body_file.write_bytes(
        json.dumps(
            envelope["certificate"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    )
    sig_file.write_bytes(base64.b64decode(envelope["signature"]["value"]))
    pub_file.write_text(public_key_info()["public_key_pem"])
    return body_file, sig_file, pub_file


def _openssl_verify(body_file: Path, sig_file: Path, pub_file: Path):
    return subprocess.run(
        [
            *(OPENSSL, "pkeyutl", "-verify", "-pubin", "-inkey", pub_file, "-rawin"),
            *("-in", body_file, "-sigfile", sig_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_verifies_a_certificate_and_rejects_a_modified_body(tmp_path):
    envelope = certificate_sign(body(subject_ref='Zoë Łukasz 李 "quoted" \\ tab\t'))
    files = _third_party_files(tmp_path, json.dumps(envelope, indent=1))

    good = _openssl_verify(*files)
    assert good.returncode == 0, good.stderr
    assert "Signature Verified Successfully" in good.stdout

    files[0].write_bytes(files[0].read_bytes().replace(b"48213", b"48214"))
    bad = _openssl_verify(*files)
    assert bad.returncode != 0
    assert "Signature Verified Successfully" not in bad.stdout


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_derives_the_same_key_id(tmp_path):
    pub_file = tmp_path / "pub.pem"
    pub_file.write_text(public_key_info()["public_key_pem"])

    der = subprocess.run(
        [OPENSSL, "pkey", "-pubin", "-in", pub_file, "-outform", "DER"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout

    assert "ed25519:" + hashlib.sha256(der[-32:]).hexdigest()[:16] == public_key_info()["key_id"]


def documented_python_verifier() -> str:
    """The Python recipe from docs/certificates.md, run as written."""
    text = (REPO / "docs" / "certificates.md").read_text(encoding="utf-8")
    section = text.split("## Verifying with Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run_documented_verifier(tmp_path: Path, envelope_text: str, pem: str):
    script, envelope_file, pub_file = (
        tmp_path / "verify_certificate.py",
        tmp_path / "envelope.json",
        tmp_path / "pub.pem",
    )
    script.write_text(documented_python_verifier(), encoding="utf-8")
    envelope_file.write_text(envelope_text, encoding="utf-8")
    pub_file.write_text(pem)
    return subprocess.run(
        [sys.executable, "-I", script, envelope_file, pub_file],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},  # no Django settings: a bare interpreter
    )


def test_documented_python_recipe_verifies_a_certificate(tmp_path):
    envelope = certificate_sign(body(subject_ref="Zoë Łukasz 李"))

    result = _run_documented_verifier(
        tmp_path, json.dumps(envelope, indent=2), public_key_info()["public_key_pem"]
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Signature OK {public_key_info()['key_id']}"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda text: text.replace('"request_id": 48213', '"request_id": 48214'), "NOT match"),
        (lambda text: text.replace('{\n  "certificate": {', '{"certificate": {"x": 1,', 1), "NOT"),
        (lambda text: text.replace('"issuer": "Lethe"', '"issuer": "Lethe", "issuer": "X"'), "dup"),
    ],
)
def test_documented_python_recipe_rejects_a_tampered_certificate(tmp_path, tamper, message):
    text = json.dumps(certificate_sign(body()), indent=2)
    tampered = tamper(text)
    assert tampered != text

    result = _run_documented_verifier(tmp_path, tampered, public_key_info()["public_key_pem"])

    assert result.returncode != 0
    assert message in result.stderr


def test_documented_python_recipe_rejects_another_key(tmp_path):
    text = json.dumps(certificate_sign(body()))

    result = _run_documented_verifier(tmp_path, text, other_key_pem().decode())

    assert result.returncode != 0
    assert "but this public key is" in result.stderr


# --- PDF --------------------------------------------------------------------------------


def test_pdf_shows_the_certificate_fields():
    envelope = certificate_sign(body())

    pdf = certificate_pdf(envelope)
    content = pdf_content(pdf)

    assert pdf.startswith(b"%PDF")
    assert pdf.rstrip().endswith(b"%%EOF")
    for text in (
        b"Certificate of erasure",
        b"(Request id)",
        b"(48213)",
        b"subj-kestrel-7",
        b"r1, r2",
        b"sha256:" + b"cd" * 32,  # manifest digest before, in full
        b"sha256:ababa...bababababab",  # stage digest, shortened
        b"shard 0: depth 1; shard 1: depth 2",
        b"passed",
        b"12" * 32,  # audit chain head
        envelope["signature"]["key_id"].encode(),
        envelope["signature"]["value"].encode(),
        b"openssl pkeyutl -verify",
        b"(verified)",  # an unknown field, shown under its own key
    ):
        assert text in content, text


def test_pdf_renders_characters_outside_latin1():
    envelope = certificate_sign(body(subject_ref="Zoë Łukasz 李", issuer="Lethe — “test”"))

    content = pdf_content(certificate_pdf(envelope))

    assert "Zoë Lukasz <U+674E>".encode("latin-1") in content
    assert b'Lethe - "test"' in content


@pytest.mark.parametrize(
    "envelope",
    [
        {},
        {"certificate": "not an object", "signature": []},
        {"certificate": {"models": "oops", "audit_chain_head": 5, "ratio": 1.5}},
        {"certificate": {"models": [1, None]}, "signature": {"value": 3}},
        {"certificate": {"models": [{"stages_deactivated": "none"}]}},
        {"certificate": {"models": [{"stages_deactivated": [{"surprise": "\x00\u2028🙂"}]}]}},
        {"certificate": {"models": [{"manifest_before": [1], "serving_depth_after": 3}]}},
        {"certificate": {"zz_" + "long_key_" * 20: "x" * 3000, "nested": {"a": [{"b": None}]}}},
        {"certificate": {"records_erased": [f"record-{i}" for i in range(2000)]}},
    ],
)
def test_pdf_renders_any_body_without_failing(envelope):
    pdf = certificate_pdf(envelope)

    assert pdf.startswith(b"%PDF")
    assert b"Certificate of erasure" in pdf_content(pdf)


def test_pdf_shows_unknown_fields_generically():
    content = pdf_content(certificate_pdf({"certificate": {"retention_basis": {"art": 17}}}))

    assert b"(retention_basis)" in content
    assert b'({"art": 17})' in content


def test_pdf_of_many_stages_spans_pages():
    stages = [{"id": i, "tensor_digest": "sha256:" + "0" * 64} for i in range(150)]
    envelope = certificate_sign(body(models=[{"model_id": 1, "stages_deactivated": stages}]))

    pdf = certificate_pdf(envelope)

    assert len(re.findall(rb"/Type /Page\b", pdf)) > 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Zoë Łukasz 李", "Zoë Lukasz <U+674E>"),
        ("Dvořák Őz", "Dvorák Oz"),  # á is Latin-1 and stays
        ("ﬁle – “x”", 'file - "x"'),
        ("tab\there", "tab<U+0009>here"),
        ("line\nbreak", "line\nbreak"),
        ("🙂", "<U+1F642>"),
    ],
)
def test_pdf_text_reduces_to_latin1_without_losing_which_character(text, expected):
    assert pdf_text(text) == expected
    pdf_text(text).encode("latin-1")
