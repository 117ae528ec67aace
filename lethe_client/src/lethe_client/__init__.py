"""Lethe's Python client: typed API methods, record pushes from files, erasure requests
with ``wait=True``, certificates verified offline, webhooks, and the ``lethe`` CLI.

No Django and no torch: a data platform or an auditor installs this package alone
(``pip install ./lethe_client``). ``verify_envelope`` needs only ``cryptography``.
"""

from typing import TYPE_CHECKING

from lethe_client.errors import ApiError, LetheError, WaitTimeout
from lethe_client.records import PushProgress, PushResult, RejectedRow
from lethe_client.verify import (
    DuplicateKeyError,
    Verification,
    canonical_bytes,
    parse_envelope,
    verify_envelope,
    verify_file,
)

if TYPE_CHECKING:
    from lethe_client.client import Client

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Client (and httpx under it) loads on first use: the offline verifier needs neither.
    if name == "Client":
        from lethe_client.client import Client

        return Client
    raise AttributeError(f"module 'lethe_client' has no attribute {name!r}")


__all__ = [
    "ApiError",
    "Client",
    "DuplicateKeyError",
    "LetheError",
    "PushProgress",
    "PushResult",
    "RejectedRow",
    "Verification",
    "WaitTimeout",
    "__version__",
    "canonical_bytes",
    "parse_envelope",
    "verify_envelope",
    "verify_file",
]
