"""The audit trail's HMAC key: what makes its chain unforgeable without the server.

Every event's ``hash`` is plain SHA-256 over its canonical form and its predecessor's hash,
so anyone can re-derive the chain; alone, that cannot tell a chain the server wrote from one
a person with database access appended to or re-hashed. Each event therefore also stores
``mac = HMAC-SHA256(key, hash)``, and ``verify_audit_chain`` refuses an event whose MAC
does not match. The key never enters the database.

The key comes from ``LETHE_AUDIT_KEY`` (or ``LETHE_AUDIT_KEY_FILE``): at least 32
characters, the same on every machine of a deployment. Without it, a random key is created
(mode 0600) at ``LETHE_AUDIT_KEY_PATH`` on first use, which keeps a bare checkout working;
back that file up with the signing key, since an event keyed with a lost key can no longer
be verified. A shared deployment with DEBUG off refuses to make that file
(``governance.key_files.key_required``): each machine would key with its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from governance.key_files import key_file_read_or_create, key_required

KEY_ID_PREFIX = "hmac-sha256:"
MIN_KEY_CHARS = 32
AUDIT_KEY_VARIABLES = "LETHE_AUDIT_KEY or LETHE_AUDIT_KEY_FILE (32 or more characters)"

_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


class AuditKeyError(ImproperlyConfigured):
    """The configured audit key is too short, or its file cannot be used."""


def audit_key() -> bytes:
    """This deployment's audit key, from the setting or the key file (created on first use)."""
    configured = getattr(settings, "LETHE_AUDIT_KEY", None)
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise AuditKeyError(
                f"LETHE_AUDIT_KEY has {len(configured)} characters; use at least "
                f"{MIN_KEY_CHARS} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return str(configured).encode("utf-8")
    key_required("the audit key", configured=False, variables=AUDIT_KEY_VARIABLES)
    path = Path(settings.LETHE_AUDIT_KEY_PATH)
    with _keys_lock:
        key = _keys.get(str(path))
        if key is None:
            key = _key_file_load_or_create(path)
            _keys[str(path)] = key
        return key


def audit_key_check() -> None:
    """Start-up check: a configured key must be long enough; an unconfigured one allowed.

    Creates nothing: the embedded key file still appears when the first event is keyed.
    """
    if getattr(settings, "LETHE_AUDIT_KEY", None):
        audit_key()
    else:
        key_required("the audit key", configured=False, variables=AUDIT_KEY_VARIABLES)


def audit_key_cache_clear() -> None:
    """Forget cached keys so the next call reads the file again (tests, restores)."""
    with _keys_lock:
        _keys.clear()


def audit_key_id() -> str:
    """Names the key without revealing it: the first 16 hex digits of SHA-256 over it."""
    return KEY_ID_PREFIX + hashlib.sha256(audit_key()).hexdigest()[:16]


def audit_mac(event_hash: str) -> str:
    """``HMAC-SHA256(key, hash)`` in hex: what an event's ``mac`` column must hold."""
    return hmac.new(audit_key(), event_hash.encode("ascii"), hashlib.sha256).hexdigest()


def audit_mac_matches(event_hash: str, mac: str) -> bool:
    return hmac.compare_digest(audit_mac(event_hash), mac)


def _key_file_load_or_create(path: Path) -> bytes:
    key = key_file_read_or_create(
        path, new_key=secrets.token_hex(32), min_chars=MIN_KEY_CHARS, hint="restore it from backup"
    )
    return key.encode("ascii")
