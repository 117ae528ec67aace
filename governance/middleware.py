"""Request ids: one id per request, in its ``X-Request-ID`` answer, its log records and the
body of a server error, so an operator given the id finds the traceback in the logs.

A caller (a proxy, a client) may send its own ``X-Request-ID``; a sane one (1 to 128 of
``A-Z a-z 0-9 . _ -``) is kept so one id follows a request across services, anything else
is replaced, since the id goes into log lines and headers verbatim.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX_LENGTH = 128
_SANE = re.compile(rf"[A-Za-z0-9._-]{{1,{REQUEST_ID_MAX_LENGTH}}}")
# What log records made outside a request (a worker, a command) carry.
NO_REQUEST = "-"

# A context variable, not a thread-local: each request (thread or task) sees its own.
_current: ContextVar[str] = ContextVar("lethe_request_id", default=NO_REQUEST)


def request_id_current() -> str | None:
    """The id of the request being handled, or None outside a request."""
    value = _current.get()
    return None if value == NO_REQUEST else value


def request_id_for(incoming: str | None) -> str:
    """``incoming`` when it is a sane id, else a new random one (32 hex digits)."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in ``MIDDLEWARE``: everything after it, including Django's logging of an
    uncaught exception and ``handler500``, runs with the id set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        token = _current.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record a handler formats (``-`` outside a request), so
    the text format and ``log.JsonLinesFormatter`` can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get()
        return True
