"""Certificate signatures: the Ed25519 key, signing and verification.

A certificate is a JSON object (DESIGN §6) signed as a detached signature in an envelope,
``{"certificate": body, "signature": {"algorithm", "key_id", "value"}}``. The signature
covers the body's canonical bytes (``governance.canonical``), which anyone can re-derive
with any JSON library that sorts keys, so a third party checks a certificate with the
published public key and standard tools (``openssl pkeyutl``), without trusting this server
(docs/certificates.md).

The signing key comes from configuration that every process shares: ``LETHE_SIGNING_KEY``
(the PEM text) or ``LETHE_SIGNING_KEY_FILE`` (a PEM file the operator provides), in that
order. Without either, the embedded default keeps a PEM file (``LETHE_SIGNING_KEY_PATH``)
created on first use, which a shared deployment refuses (``governance.key_files``).
Keys that signed before a rotation stay verifiable through ``governance.certificates.keys``.
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
from governance.key_files import key_required, publish_exclusively

ALGORITHM = "Ed25519"
KEY_ID_PREFIX = "ed25519:"
SIGNATURE_BYTES = 64

ENVELOPE_KEYS = frozenset({"certificate", "signature"})
SIGNATURE_KEYS = frozenset({"algorithm", "key_id", "value"})


class SigningKeyError(ImproperlyConfigured):
    """The configured key, or the key file, does not hold a usable Ed25519 private key."""


SIGNING_KEY_VARIABLES = "LETHE_SIGNING_KEY (PEM text) or LETHE_SIGNING_KEY_FILE (a PEM file)"


# --- Signing key ------------------------------------------------------------------------

_signing_keys: dict[str, Ed25519PrivateKey] = {}
_signing_keys_lock = threading.Lock()


def signing_key_path() -> Path:
    """Where this server's signing key lives (``settings.LETHE_SIGNING_KEY_PATH``)."""
    default = Path(settings.BASE_DIR) / "var" / "keys" / "signing-ed25519.pem"
    return Path(getattr(settings, "LETHE_SIGNING_KEY_PATH", default))


def signing_key() -> Ed25519PrivateKey:
    """This server's Ed25519 signing key, from configuration or the key file; cached.

    Every process of a deployment must sign with the same key, so the key is configuration
    (``LETHE_SIGNING_KEY``, then ``LETHE_SIGNING_KEY_FILE``) rather than per-process state;
    without it, a file created on first use keeps a bare checkout working. Cached per
    source, so changing the setting (a rotation, a test) is seen at once.
    """
    pem, file = _configured()
    if pem is not None:
        cache_key = "env:" + hashlib.sha256(pem.encode("utf-8")).hexdigest()
    elif file is not None:
        cache_key = f"file:{file}"
    else:
        _unconfigured_allowed()
        cache_key = f"path:{signing_key_path()}"
    with _signing_keys_lock:
        key = _signing_keys.get(cache_key)
        if key is None:
            key = _signing_key_load(pem, file)
            _signing_keys[cache_key] = key
        return key


def signing_key_configured() -> bool:
    """Whether the key comes from configuration (not the auto-created file)."""
    return _configured() != (None, None)


def signing_key_check() -> None:
    """Start-up check: a configured key must parse; an unconfigured one must be allowed.

    Creates nothing: the embedded key file still appears only when something first signs.
    """
    if signing_key_configured():
        signing_key()
    else:
        _unconfigured_allowed()


def signing_key_cache_clear() -> None:
    """Forget cached keys, so the next call reads the key file again (tests, key rotation)."""
    with _signing_keys_lock:
        _signing_keys.clear()


def _unconfigured_allowed() -> None:
    """The one rule for every key (``key_required``): no key file in a shared deployment."""
    key_required("the certificate signing key", configured=False, variables=SIGNING_KEY_VARIABLES)


def _configured() -> tuple[str | None, Path | None]:
    """``(LETHE_SIGNING_KEY, LETHE_SIGNING_KEY_FILE)`` as set; blank counts as unset."""
    pem = getattr(settings, "LETHE_SIGNING_KEY", None) or None
    file = getattr(settings, "LETHE_SIGNING_KEY_FILE", None) or None
    return (str(pem) if pem else None), (Path(file) if file else None)


def _signing_key_load(pem: str | None, file: Path | None) -> Ed25519PrivateKey:
    """The key from the first source that is set: the PEM text, the PEM file, the key file."""
    if pem is not None:
        # One-line env files (docker --env-file, systemd) cannot hold newlines: accept "\n".
        text = pem.replace("\\n", "\n") if "\n" not in pem else pem
        return _signing_key_parse("LETHE_SIGNING_KEY", text.encode("utf-8"), hint=_CONFIGURED_HINT)
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise SigningKeyError(
                f"LETHE_SIGNING_KEY_FILE={str(file)!r} cannot be read ({exc.strerror}); "
                "Lethe never creates this file: provide the PEM there, the same on every "
                "machine"
            ) from None
        return _signing_key_parse(f"LETHE_SIGNING_KEY_FILE {file}", data, hint=_CONFIGURED_HINT)
    return _signing_key_load_or_create(signing_key_path())


_CONFIGURED_HINT = (
    "give an unencrypted PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`)"
)
_FILE_HINT = "restore it from backup, or move it away to create a new key"


def _signing_key_load_or_create(path: Path) -> Ed25519PrivateKey:
    try:
        return _signing_key_parse(f"signing key file {path}", path.read_bytes(), hint=_FILE_HINT)
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
    return _signing_key_parse(f"signing key file {path}", path.read_bytes(), hint=_FILE_HINT)


def _signing_key_parse(source: str, data: bytes, *, hint: str) -> Ed25519PrivateKey:
    """The Ed25519 key in ``data``; SigningKeyError naming ``source`` (never the key) if not."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(
            f"{source} is not an unencrypted PEM private key ({exc}); {hint}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{source} holds a {type(key).__name__}, not an Ed25519 key; {hint}")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:16]


def public_key_info() -> dict[str, str]:
    """What the public-key endpoint serves: enough for any tool to verify a certificate."""
    return public_key_describe(signing_key().public_key())


def public_key_describe(public_key: Ed25519PublicKey) -> dict[str, str]:
    """``key_id``, ``algorithm``, ``public_key_pem`` and ``public_key_raw`` of one key."""
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
        loaded = public_key_load(public_key_pem)
        if isinstance(loaded, str):
            return SignatureCheck(ok=False, key_id="", reason=loaded)
        public_key = loaded
    verifier = key_id(public_key)
    reason = _envelope_problem(envelope, public_key, verifier)
    return SignatureCheck(ok=not reason, key_id=verifier, reason=reason)


def public_key_load(pem: str | bytes) -> Ed25519PublicKey | str:
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
