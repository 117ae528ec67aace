"""The client's errors: one for what the API answered, one for giving up on waiting.

The API answers every 4xx and 5xx as ``{"error": {"code", "message", "details"}}`` with the
offending field named first in the message; ``ApiError`` carries exactly that, plus the
HTTP status and the request id the server logged it under, so a caller can branch on
``code`` and an operator can find the log record.
"""

from __future__ import annotations

from typing import Any


class LetheError(Exception):
    """Base class of everything this package raises on purpose."""


class ApiError(LetheError):
    """The API refused or failed a request.

    ``code`` is stable and machine-readable (``invalid``, ``not_found``, ``conflict``,
    ``four_eyes``, ...); ``message`` is for people and names the field first
    (``subject_id: ...``); ``details`` holds field errors by name or what the code needs.
    A body that is not the API's error shape (a proxy's HTML page) gives ``code`` ``http_<status>``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id


class WaitTimeout(LetheError):
    """``wait=True`` ran out of time; ``last`` is the object as last seen (still open)."""

    def __init__(self, message: str, last: Any) -> None:
        super().__init__(message)
        self.last = last
