"""Django's SECRET_KEY when the environment gives none: a random key file, made on first use.

A known development key would let anyone who read this repository forge session cookies
and password-reset links, so none exists. Without ``SECRET_KEY`` (or ``SECRET_KEY_FILE``)
every process of one installation shares a random key kept in ``var/keys/django-secret.key``
(mode 0600): a fresh clone's demo, ``serve``, worker, test suite and a plain
``gunicorn governance.wsgi`` all work with no environment, and no two installations share
a key. A deployment on several machines must set ``SECRET_KEY`` instead, the same on each:
a shared deployment with DEBUG off refuses to start without it
(``governance.key_files.key_required``, checked by ``secret_key_check`` at start-up).

The key is lazy, so importing settings still creates nothing on disk (the file appears
when something first signs: a login, a session). Processes that race to create it agree:
the loser of the hard-link race reads the winner's key
(``governance.key_files``, as for the signing key).
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from django.utils.functional import Promise, lazy

# Django's own check (security.W009) wants 50 characters with 5 distinct ones.
MIN_KEY_CHARS = 50
CONFIGURED_BY = "SECRET_KEY or SECRET_KEY_FILE (50 or more random characters)"


def secret_key_lazy(path: Path) -> str:
    """A str stand-in that reads or creates the key file at ``path`` when first used."""
    return lazy(functools.partial(secret_key_file_load_or_create, path), str)()


@functools.cache
def secret_key_file_load_or_create(path: Path) -> str:
    """The key in ``path``; a new random one (mode 0600) if the file does not exist.

    Cached per path: a key must not change under a running process, even if the file is
    deleted (``demo --reset``); the next process makes a new one.
    """
    # Imported here: settings loads this module, and signing needs settings to be loaded.
    from governance.key_files import key_file_read_or_create, key_required

    key_required("SECRET_KEY", configured=False, variables=CONFIGURED_BY)
    return key_file_read_or_create(
        path,
        new_key=secrets.token_urlsafe(64),
        min_chars=MIN_KEY_CHARS,
        hint="delete it to have a new one made, or set SECRET_KEY",
    )


def secret_key_check() -> None:
    """Start-up check: where keys must be configured, SECRET_KEY must not be the key file.

    Reads SECRET_KEY only then: reading the lazy key creates its file, which the embedded
    default leaves to the first session.
    """
    from django.conf import settings

    from governance.key_files import key_required, keys_must_be_configured

    if not keys_must_be_configured():
        return
    # Reading the lazy stand-in runs secret_key_file_load_or_create, which refuses too.
    generated = isinstance(settings.SECRET_KEY, Promise)
    key_required("SECRET_KEY", configured=not generated, variables=CONFIGURED_BY)
