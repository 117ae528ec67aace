"""Certificate signatures: the Ed25519 key, signing and verification.

A certificate is a JSON object (DESIGN §6) signed as a detached signature in an envelope,
``{"certificate": body, "signature": {"algorithm", "key_id", "value"}}``. The signature
covers the body's canonical bytes (``governance.canonical``), which anyone can re-derive
with any JSON library that sorts keys, so a third party checks a certificate with the
published public key and standard tools (``openssl pkeyutl``), without trusting this server
(docs/certificates.md).

The signing key lives in a PEM file (``LETHE_SIGNING_KEY_PATH``) created on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from governance.canonical import canonical_bytes
from governance.key_files import publish_exclusively

ALGORITHM = "Ed25519"
KEY_ID_PREFIX = "ed25519:"
SIGNATURE_BYTES = 64

ENVELOPE_KEYS = frozenset({"certificate", "signature"})
SIGNATURE_KEYS = frozenset({"algorithm", "key_id", "value"})


class SigningKeyError(ImproperlyConfigured):
    """The signing key file exists but does not hold a usable Ed25519 private key."""


# --- Signing key ------------------------------------------------------------------------

_signing_keys: dict[str, Ed25519PrivateKey] = {}
_signing_keys_lock = threading.Lock()


def signing_key_path() -> Path:
    """Where this server's signing key lives (``settings.LETHE_SIGNING_KEY_PATH``)."""
    default = Path(settings.BASE_DIR) / "var" / "keys" / "signing-ed25519.pem"
    return Path(getattr(settings, "LETHE_SIGNING_KEY_PATH", default))


def signing_key() -> Ed25519PrivateKey:
    """This server's Ed25519 signing key, created on first use and cached per path.

    Every process of a deployment must sign with the same key, so the key is a file rather
    than per-process state; creating it on first use keeps a bare checkout working.
    """
    path = signing_key_path()
    cache_key = str(path)
    with _signing_keys_lock:
        key = _signing_keys.get(cache_key)
        if key is None:
            key = _signing_key_load_or_create(path)
            _signing_keys[cache_key] = key
        return key


def signing_key_cache_clear() -> None:
    """Forget cached keys, so the next call reads the key file again (tests, key rotation)."""
    with _signing_keys_lock:
        _signing_keys.clear()


def _signing_key_load_or_create(path: Path) -> Ed25519PrivateKey:
    try:
        return _signing_key_parse(path, path.read_bytes())
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if publish_exclusively(path, pem):
        return key
    # Another process created the key first: everyone signs with the winner's key.
    return _signing_key_parse(path, path.read_bytes())


def _signing_key_parse(path: Path, data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(
            f"signing key file {path} is not an unencrypted PEM private key ({exc}); "
            "restore it from backup, or move it away to create a new key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"signing key file {path} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:16]


def public_key_info() -> dict[str, str]:
    """What the public-key endpoint serves: enough for any tool to verify a certificate."""
    public_key = signing_key().public_key()
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "key_id": key_id(public_key),
        "algorithm": ALGORITHM,
        "public_key_pem": pem.decode("ascii"),
        "public_key_raw": base64.b64encode(raw).decode("ascii"),
    }


def signer_key_id() -> str:
    """The key id this server signs as: what a body's ``signing_key_id`` must name."""
    return key_id(signing_key().public_key())


def certificate_digest(body: dict[str, Any]) -> str:
    """``sha256:`` over the body's canonical bytes: how the audit trail names a certificate."""
    return "sha256:" + hashlib.sha256(canonical_bytes(body)).hexdigest()


# --- Signing and verification ----------------------------------------------------------


def certificate_sign(body: dict[str, Any]) -> dict[str, Any]:
    """Sign ``body`` with this server's key; return the envelope to store and serve.

    The envelope holds a copy of the body as signed, so later changes to the caller's dict
    cannot make the stored certificate disagree with its signature.
    """
    key = signing_key()
    signer = key_id(key.public_key())
    data = canonical_bytes(body)
    claimed = body.get("signing_key_id", signer)
    if claimed != signer:
        raise ValueError(f"$.signing_key_id: body names {claimed!r}; this server signs as {signer}")
    return {
        "certificate": json.loads(data),
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": signer,
            "value": base64.b64encode(key.sign(data)).decode("ascii"),
        },
    }


@dataclass(frozen=True)
class SignatureCheck:
    """Result of checking an envelope's signature.

    ``key_id`` is the id of the key the check used (empty when the given public key could
    not be read); ``reason`` says what is wrong, and is empty when ``ok``.
    """

    ok: bool
    key_id: str
    reason: str


def certificate_verify(
    envelope: Any, *, public_key_pem: str | bytes | None = None
) -> SignatureCheck:
    """Check an envelope against ``public_key_pem``, or this server's own key when None.

    Never raises for malformed input (the envelope or the given PEM): certificates arrive
    from outside, and the answer to a broken one is ok=False with a reason, not a 500.
    """
    if public_key_pem is None:
        public_key = signing_key().public_key()
    else:
        loaded = _public_key_load(public_key_pem)
        if isinstance(loaded, str):
            return SignatureCheck(ok=False, key_id="", reason=loaded)
        public_key = loaded
    verifier = key_id(public_key)
    reason = _envelope_problem(envelope, public_key, verifier)
    return SignatureCheck(ok=not reason, key_id=verifier, reason=reason)


def _public_key_load(pem: str | bytes) -> Ed25519PublicKey | str:
    """The Ed25519 public key in ``pem``, or a reason why there is none."""
    try:
        data = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm) as exc:
        return f"public key is not a PEM SubjectPublicKeyInfo: {exc}"
    if not isinstance(key, Ed25519PublicKey):
        return f"public key is a {type(key).__name__}, not an Ed25519 key"
    return key


def _envelope_problem(envelope: Any, public_key: Ed25519PublicKey, verifier: str) -> str:
    """What is wrong with ``envelope`` under ``public_key``; empty when the signature holds."""
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
    algorithm, claimed, value = (signature.get(k) for k in ("algorithm", "key_id", "value"))
    if algorithm != ALGORITHM:
        return f"signature.algorithm is {algorithm!r}, expected {ALGORITHM!r}"
    if not isinstance(claimed, str):
        return "signature.key_id is missing or not a string"
    if claimed != verifier:
        return f"signature.key_id {claimed!r} does not match the verifying key {verifier!r}"
    if "signing_key_id" in body and body["signing_key_id"] != claimed:
        return f"certificate.signing_key_id {body['signing_key_id']!r} != signature.key_id"
    if not isinstance(value, str):
        return "signature.value is missing or not a string"
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


def _unexpected(mapping: dict[Any, Any], allowed: frozenset[str]) -> str:
    return ", ".join(sorted(repr(key) for key in mapping if key not in allowed))
