"""Key files that every process of one installation shares, created on first use.

The certificate signing key, the audit trail's HMAC key and Django's SECRET_KEY are each a
file when the environment gives none, so a bare checkout works and all its processes
agree. Creation is race-free: the first process to publish wins, and the others read its
key. A deployment on several machines sets the keys in the environment instead, and
``key_required`` is the one rule that makes it: a shared deployment with DEBUG off refuses
to make up a key of its own (each machine would make a different one).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def publish_exclusively(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` (mode 0600) unless it exists; False if it did.

    The bytes go to a private temporary file first (O_CREAT | O_EXCL, 0600), which is then
    hard-linked into place: the link fails if the key exists, and a process that loses the
    race never sees a half-written key file, as it could if the final name were written
    in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def key_file_read_or_create(path: Path, *, new_key: str, min_chars: int, hint: str) -> str:
    """The key text in ``path``, which is created holding ``new_key`` if it does not exist.

    A file shorter than ``min_chars`` is refused (ImproperlyConfigured, with ``hint`` on
    what to do): a truncated key would quietly weaken everything it protects.
    """
    if not path.exists():
        # Does nothing when another process made it first: all then read the one file.
        publish_exclusively(path, new_key.encode("ascii") + b"\n")
    key = path.read_text(encoding="ascii").strip()
    if len(key) < min_chars:
        raise ImproperlyConfigured(
            f"key file {path} holds {len(key)} characters, fewer than {min_chars}; {hint}"
        )
    return key


def keys_must_be_configured() -> bool:
    """Whether no key may be made up locally: a shared deployment, with DEBUG off.

    ``LETHE_SHARED_DEPLOYMENT`` (set by ``LETHE_ARTIFACTS_S3_BUCKET`` or by itself) says
    that several machines share one database and store; a key file created on one of them
    would differ from the others' (certificates signed by several keys, audit MACs that
    only some processes can check, sessions valid on one web process). DEBUG on is one
    person trying things, where the embedded key files are what they want.
    """
    # Imported here: settings imports secret_key, which imports this module lazily.
    from django.conf import settings

    return bool(getattr(settings, "LETHE_SHARED_DEPLOYMENT", False)) and not settings.DEBUG


def key_required(name: str, *, configured: bool, variables: str) -> None:
    """Refuse (ImproperlyConfigured) a key that is not configured where it must be.

    Called for every key (signing, audit, SECRET_KEY) at start-up (``GovernanceConfig.ready``)
    and again before a key file would be created, so no process of a shared deployment
    ever signs or keys with a key of its own. ``variables`` names what to set.
    """
    if configured or not keys_must_be_configured():
        return
    raise ImproperlyConfigured(
        f"{name} is not configured: this is a shared deployment (LETHE_ARTIFACTS_S3_BUCKET "
        "or LETHE_SHARED_DEPLOYMENT is set) with DEBUG off, where every process on every "
        f"machine must use the same key. Set {variables}, the same on every machine "
        "(docs/operations.md, Keys)."
    )
