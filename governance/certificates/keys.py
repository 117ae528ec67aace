"""The registry of signing keys: every public key that ever signed here, by key id.

A key rotation (a new ``LETHE_SIGNING_KEY``) gives new certificates a new key id; the
certificates issued before still name the old one. So each key is registered the first time
it signs (``signing_key_register``, in the transaction that stores what it signed), the
public-keys endpoint lists them all, and a stored certificate is verified with the key its
signature names (``certificate_verify_stored``), not only with the current one.

``signing`` stays free of the database; this module is the part that needs it.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone

from governance.certificates.signing import (
    SignatureCheck,
    certificate_verify,
    public_key_describe,
    public_key_load,
    signer_key_id,
    signing_key,
)
from governance.certificates.signing import key_id as key_id_of
from governance.models import SigningKey


def signing_key_register() -> str:
    """Record the current key in the registry (once; safe under concurrency); its key id.

    Called where a signature is stored (the certificate body names the signer), so every key
    that signed anything kept is listed before it could ever be rotated away.
    ``get_or_create`` on the unique ``key_id``: two processes registering at once both end
    with the one row (the loser's insert fails on the index and reads the winner's).
    """
    info = public_key_describe(signing_key().public_key())
    SigningKey.objects.get_or_create(
        key_id=info["key_id"],
        defaults={
            "algorithm": info["algorithm"],
            "public_key_pem": info["public_key_pem"],
            "first_used_at": timezone.now(),
        },
    )
    return info["key_id"]


def public_keys() -> list[dict[str, Any]]:
    """Every key that ever signed, oldest first, then the current key if it has not yet.

    Each: ``key_id``, ``algorithm``, ``public_key_pem``, ``public_key_raw``,
    ``first_used_at`` (None for a current key that has signed nothing) and ``current``.
    """
    current = signer_key_id()
    keys = []
    for row in SigningKey.objects.order_by("first_used_at", "pk"):
        info = _describe(row)
        keys.append(
            {**info, "first_used_at": row.first_used_at, "current": info["key_id"] == current}
        )
    if not any(key["current"] for key in keys):
        info = public_key_describe(signing_key().public_key())
        keys.append({**info, "first_used_at": None, "current": True})
    return keys


def certificate_verify_stored(envelope: Any) -> SignatureCheck:
    """Check ``envelope`` with the key its ``signature.key_id`` names: current or registered.

    The current key needs no database. Any other key id must be in the registry, or the
    answer is ok=False saying the key is unknown here; the registry's PEM is then checked
    exactly as a key given by hand (the key id is re-derived from it, so a swapped PEM
    fails). Malformed envelopes get the same reasons as ``certificate_verify``.
    """
    claimed = _claimed_key_id(envelope)
    if claimed is None or claimed == signer_key_id():
        return certificate_verify(envelope)
    row = SigningKey.objects.filter(key_id=claimed).first()
    if row is None:
        return SignatureCheck(
            ok=False,
            key_id=claimed,
            reason=f"signature.key_id {claimed!r} is unknown here: no key with this id "
            "ever signed on this server (GET /api/v1/certificates/public-keys/ lists those "
            "that did)",
        )
    return certificate_verify(envelope, public_key_pem=row.public_key_pem)


def registered_public_key(key_id: str) -> Ed25519PublicKey | None:
    """The public key with ``key_id``: the current key, or one registered before; else None.

    For anything else signed and stored here (audit checkpoints) that must verify after a
    rotation. The id is re-derived from the registered PEM, so a swapped row gives None.
    """
    current = signing_key().public_key()
    if key_id == key_id_of(current):
        return current
    row = SigningKey.objects.filter(key_id=key_id).first()
    loaded = public_key_load(row.public_key_pem) if row is not None else None
    if isinstance(loaded, Ed25519PublicKey) and key_id_of(loaded) == key_id:
        return loaded
    return None


def _claimed_key_id(envelope: Any) -> str | None:
    """The key id an envelope's signature names, when it names one as a string."""
    signature = envelope.get("signature") if isinstance(envelope, dict) else None
    claimed = signature.get("key_id") if isinstance(signature, dict) else None
    return claimed if isinstance(claimed, str) else None


def _describe(row: SigningKey) -> dict[str, str]:
    """A registered key as the public-key endpoint describes keys: derived from its PEM."""
    loaded = public_key_load(row.public_key_pem)
    if isinstance(loaded, str):  # only a hand-edited row: list it, it verifies nothing
        return {
            "key_id": row.key_id,
            "algorithm": row.algorithm,
            "public_key_pem": row.public_key_pem,
            "public_key_raw": "",
        }
    return public_key_describe(loaded)
