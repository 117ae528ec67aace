"""The one canonical JSON form: the exact bytes Lethe hashes and signs.

Certificate signatures, audit chain hashes, idempotency fingerprints and serving manifest
digests all cover ``canonical_bytes(value)``, which is::

    json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

Object keys sorted by code point, no whitespace, UTF-8 with non-ASCII characters written as
they are; only ``"``, ``\\`` and control characters below U+0020 are escaped. Any JSON
library that sorts keys re-derives these bytes, which is what lets a third party check a
certificate or re-hash the audit trail without this code (docs/certificates.md).

The values are restricted to those with a single JSON text everywhere: strings (valid
Unicode), integers within ±(2**53 - 1) (RFC 7493 I-JSON: beyond that many parsers round),
booleans, null, lists and objects with string keys. A float is refused, since JSON
libraries print floats differently; so are tuples, sets and any other type, whose JSON
form would be a guess.

Why not RFC 8785 (JCS)? For every value accepted here whose keys hold no character beyond
U+FFFF (every key Lethe writes is ASCII), JCS gives these very bytes. The two differ only
where this form refuses the value (floats: JCS writes ``1.0`` as ``1``) or on key order
when keys mix characters beyond U+FFFF with ones in U+E000-U+FFFF (JCS sorts by UTF-16
code unit, this form by code point). Adopting it would add a dependency and change the
recipe the certificates document, for no byte Lethe writes.
"""

from __future__ import annotations

import json
from typing import Any

# Integers beyond ±(2**53 - 1) lose precision in JavaScript and many other JSON parsers
# (RFC 7493 I-JSON), and a verifier that re-serialises a rounded number gets other bytes.
MAX_SAFE_INTEGER = 2**53 - 1


def canonical_bytes(value: dict[str, Any]) -> bytes:
    """The canonical bytes of the JSON object ``value``.

    Raises ValueError naming the offending path (``$.models[0].x``) for a float, NaN, an
    integer beyond ±(2**53 - 1), a non-string key, a string that is not valid Unicode, a
    circular reference, or any type other than str, int, bool, None, list and dict.
    """
    if not isinstance(value, dict):
        raise ValueError(f"$: canonical JSON here is an object, not a {type(value).__name__}")
    _check(value, "$", set())
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _check(value: Any, path: str, open_containers: set[int]) -> None:
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
        _check_items(value, path, open_containers)
        open_containers.discard(id(value))
    else:
        raise ValueError(f"{path}: {type(value).__name__} has no canonical JSON form")


def _check_items(value: list[Any] | dict[Any, Any], path: str, open_containers: set[int]) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", open_containers)
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: key {key!r} is not a string")
        _check_text(key, f"{path} key {key!r}")
        _check(item, f"{path}.{key}", open_containers)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: string is not valid Unicode (lone surrogate)") from None
