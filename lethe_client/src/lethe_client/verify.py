"""Offline verification of a Lethe deletion certificate: only the envelope and a public key.

An auditor must be able to check a certificate without trusting (or reaching) the server
that issued it, so nothing here talks to the network. The rules are those of
docs/certificates.md, re-derived here rather than imported, because the client never
depends on the server's code:

* the envelope is ``{"certificate": body, "signature": {"algorithm", "key_id", "value"}}``
  and nothing else (an extra field would not be covered by the signature);
* the signature is Ed25519 over the body's canonical bytes, ``json.dumps(body,
  sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")``, where the
  body holds only strings, integers within ±(2**53 - 1), booleans, null, lists and objects;
* the key id is ``ed25519:`` + the first 16 hex digits of SHA-256 over the raw public key,
  and it must equal ``signature.key_id`` and the body's ``signing_key_id`` when present.

``tests/client/test_verify.py`` checks that ``canonical_bytes`` here gives the server's bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

ALGORITHM = "Ed25519"
KEY_ID_PREFIX = "ed25519:"
SIGNATURE_BYTES = 64
# Beyond this, JavaScript and many JSON parsers round integers (RFC 7493 I-JSON), and a
# verifier that re-serialises a rounded number gets other bytes than were signed.
MAX_SAFE_INTEGER = 2**53 - 1
ENVELOPE_KEYS = frozenset({"certificate", "signature"})
SIGNATURE_KEYS = frozenset({"algorithm", "key_id", "value"})


@dataclass(frozen=True)
class Verification:
    """The outcome of an offline check.

    ``key_id`` is the id of the key used (empty when the PEM could not be read); ``reason``
    says what is wrong and is empty when ``ok``. ``certificate`` is the body when it could
    be read, so a caller can show what it vouches for.
    """

    ok: bool
    key_id: str
    reason: str
    certificate: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.ok


class DuplicateKeyError(ValueError):
    """A JSON object repeats a key: parsers disagree on which one wins, so it is refused."""


def canonical_bytes(value: dict[str, Any]) -> bytes:
    """The exact bytes Lethe signs for the JSON object ``value``.

    Raises ValueError naming the offending path (``$.models[0].x``) for a float, an integer
    beyond ±(2**53 - 1), a non-string key, a lone surrogate or any other type, since none
    of those has one JSON text every library agrees on.
    """
    if not isinstance(value, dict):
        raise ValueError(f"$: canonical JSON here is an object, not a {type(value).__name__}")
    _check(value, "$", set())
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _check(value: Any, path: str, open_containers: set[int]) -> None:
    """Refuse what has no single JSON text (the rules of the server's canonical form)."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is beyond ±(2**53 - 1)")
    elif isinstance(value, float):
        raise ValueError(f"{path}: {value!r} is a float; canonical JSON carries only integers")
    elif isinstance(value, list | dict):
        if id(value) in open_containers:
            raise ValueError(f"{path}: circular reference")
        open_containers.add(id(value))
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check(item, f"{path}[{index}]", open_containers)
        else:
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: key {key!r} is not a string")
                _check_text(key, f"{path} key {key!r}")
                _check(item, f"{path}.{key}", open_containers)
        open_containers.discard(id(value))
    else:
        raise ValueError(f"{path}: {type(value).__name__} has no canonical JSON form")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: string is not valid Unicode (lone surrogate)") from None


def key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 16 hex digits of SHA-256 over the raw 32-byte key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM SubjectPublicKeyInfo; ValueError saying why not."""
    data = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"public key is not a PEM SubjectPublicKeyInfo: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"public key is a {type(key).__name__}, not an Ed25519 key")
    return key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        raise DuplicateKeyError(f"duplicate key in JSON: {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def parse_envelope(text: str | bytes) -> Any:
    """Parse an envelope's JSON, refusing duplicate keys (raises ValueError)."""
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


def verify_envelope(envelope: Any, public_key_pem: str | bytes) -> Verification:
    """Check ``envelope`` (parsed JSON) against ``public_key_pem``; never raises for bad input.

    A certificate comes from outside; the useful answer to a broken one is ``ok=False``
    with a reason a person can act on, not a traceback.
    """
    try:
        public_key = load_public_key(public_key_pem)
    except ValueError as exc:
        return Verification(ok=False, key_id="", reason=str(exc))
    verifier = key_id(public_key)
    body = envelope.get("certificate") if isinstance(envelope, dict) else None
    reason = _envelope_problem(envelope, public_key, verifier)
    return Verification(
        ok=not reason,
        key_id=verifier,
        reason=reason,
        certificate=body if isinstance(body, dict) else None,
    )


def verify_file(envelope_path: str | Path, public_key_path: str | Path) -> Verification:
    """Check the envelope stored at ``envelope_path`` with the PEM at ``public_key_path``."""
    try:
        envelope = parse_envelope(Path(envelope_path).read_bytes())
    except (OSError, ValueError) as exc:
        return Verification(ok=False, key_id="", reason=f"{envelope_path}: {exc}")
    try:
        pem = Path(public_key_path).read_bytes()
    except OSError as exc:
        return Verification(ok=False, key_id="", reason=f"{public_key_path}: {exc.strerror}")
    return verify_envelope(envelope, pem)


def _envelope_problem(envelope: Any, public_key: Ed25519PublicKey, verifier: str) -> str:
    """What is wrong with ``envelope`` under ``public_key``; empty when the signature holds."""
    shape = _shape_problem(envelope)
    if shape:
        return shape
    body, signature = envelope["certificate"], envelope["signature"]
    claimed, value = signature["key_id"], signature["value"]
    if claimed != verifier:
        return f"signature.key_id {claimed!r} does not match the verifying key {verifier!r}"
    if "signing_key_id" in body and body["signing_key_id"] != claimed:
        return f"certificate.signing_key_id {body['signing_key_id']!r} != signature.key_id"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "signature.value is not valid standard base64"
    if len(raw) != SIGNATURE_BYTES:
        return f"signature.value decodes to {len(raw)} bytes, an Ed25519 signature has 64"
    try:
        data = canonical_bytes(body)
    except ValueError as exc:
        return f"certificate cannot be canonicalised: {exc}"
    try:
        public_key.verify(raw, data)
    except InvalidSignature:
        return "signature does not match the certificate (altered body or wrong key)"
    return ""


def _shape_problem(envelope: Any) -> str:
    """The envelope's structural faults, before any cryptography; empty when well formed."""
    if not isinstance(envelope, dict):
        return f"envelope is a {type(envelope).__name__}, not a JSON object"
    if extra := _unexpected(envelope, ENVELOPE_KEYS):
        return f"envelope has unsigned extra fields: {extra}"
    body, signature = envelope.get("certificate"), envelope.get("signature")
    if not isinstance(body, dict):
        return "envelope.certificate is missing or not a JSON object"
    if not isinstance(signature, dict):
        return "envelope.signature is missing or not a JSON object"
    if extra := _unexpected(signature, SIGNATURE_KEYS):
        return f"signature has unexpected fields: {extra}"
    if signature.get("algorithm") != ALGORITHM:
        return f"signature.algorithm is {signature.get('algorithm')!r}, expected {ALGORITHM!r}"
    if not isinstance(signature.get("key_id"), str):
        return "signature.key_id is missing or not a string"
    if not isinstance(signature.get("value"), str):
        return "signature.value is missing or not a string"
    return ""


def _unexpected(mapping: dict[Any, Any], allowed: frozenset[str]) -> str:
    return ", ".join(sorted(repr(key) for key in mapping if key not in allowed))
