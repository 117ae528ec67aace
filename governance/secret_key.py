"""Django's SECRET_KEY when the environment gives none: a random key file, made on first use.

A known development key would let anyone who read this repository forge session cookies
and password-reset links, so none exists. Without ``SECRET_KEY`` (or ``SECRET_KEY_FILE``)
every process of one installation shares a random key kept in ``var/keys/django-secret.key``
(mode 0600): a fresh clone's demo, ``serve``, worker, test suite and a plain
``gunicorn governance.wsgi`` all work with no environment, and no two installations share
a key. A deployment on several machines must set ``SECRET_KEY`` instead, the same on each.

The key is lazy, so importing settings still creates nothing on disk (the file appears
when something first signs: a login, a session). Processes that race to create it agree:
the loser of the hard-link race reads the winner's key
(``governance.key_files``, as for the signing key).
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from django.utils.functional import lazy

# Django's own check (security.W009) wants 50 characters with 5 distinct ones.
MIN_KEY_CHARS = 50


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
    from governance.key_files import key_file_read_or_create

    return key_file_read_or_create(
        path,
        new_key=secrets.token_urlsafe(64),
        min_chars=MIN_KEY_CHARS,
        hint="delete it to have a new one made, or set SECRET_KEY",
    )
