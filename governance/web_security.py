"""The web process's own protections, besides what Django, django-csp and django-axes give.

- ``ChunkedBodies`` (WSGI, wraps ``governance.wsgi.application``): Django reads a request
  body only as far as ``Content-Length`` says, so a ``Transfer-Encoding: chunked`` upload
  (no length) reached the API empty. Under a server that marks its input as terminated
  (gunicorn sets ``wsgi.input_terminated``) the body is read here, bounded by
  ``LETHE_MAX_UPLOAD_BYTES``, and handed on with its length.
- ``NoStoreMiddleware``: ``Cache-Control: no-store`` on every answer Django gives, except
  the public API documents, so no browser or proxy cache keeps a page or answer naming a
  subject or holding a certificate. Static files (WhiteNoise, earlier) keep their caching.
- ``client_ip``: the client's address behind ``LETHE_TRUSTED_PROXY_COUNT`` proxies, the
  same rule DRF's throttles use (``NUM_PROXIES``), for django-axes' lockouts.
- Importing this module (Django loads it with ``MIDDLEWARE``) connects the sign-in signals
  to ``services.logins``: every failed web sign-in and every lockout is audited.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from typing import IO, Any

from axes.signals import user_locked_out  # type: ignore[import-untyped]
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from governance.services.logins import login_failure_record, login_lockout_record

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_READ_SIZE = 64 * 1024
# Public documents a cache may keep: they name no subject and hold no certificate.
CACHEABLE_URL_NAMES = frozenset(
    {"api-schema", "api-certificate-public-key", "api-certificate-public-keys"}
)


# --- chunked request bodies -------------------------------------------------------------


class ChunkedBodies:
    """Give Django a chunked request body with the ``CONTENT_LENGTH`` it needs to read it.

    Only when the server promises that reading its input to the end is safe
    (``wsgi.input_terminated``): otherwise a read without a length could block forever.
    A body over the limit is not read further; Django is told its length is one byte over
    the limit and reading it raises ``RequestDataTooBig``, which the API answers as 413 in
    the error envelope and the pages as 400, exactly as for a too-long ``Content-Length``.
    """

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if _is_unsized_chunked(environ):
            environ = {**environ, **_buffered(environ["wsgi.input"])}
        return self.app(environ, start_response)


def _is_unsized_chunked(environ: dict[str, Any]) -> bool:
    return (
        not environ.get("CONTENT_LENGTH")
        and bool(environ.get("wsgi.input_terminated"))
        and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def _buffered(stream: IO[bytes]) -> dict[str, Any]:
    """``CONTENT_LENGTH`` and ``wsgi.input`` for the body, spooled to disk past the memory
    limit for uploads; over ``LETHE_MAX_UPLOAD_BYTES`` a stream that refuses to be read."""
    limit = settings.LETHE_MAX_UPLOAD_BYTES
    body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115 (Django reads it after we return)
    size = 0
    while chunk := stream.read(min(_READ_SIZE, limit + 1 - size)):
        body.write(chunk)
        size += len(chunk)
        if size > limit:
            body.close()
            return {"CONTENT_LENGTH": str(limit + 1), "wsgi.input": _TooLarge(limit)}
    body.seek(0)
    return {"CONTENT_LENGTH": str(size), "wsgi.input": body}


class _TooLarge:
    """The input of a chunked body over the limit: any read raises RequestDataTooBig."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def read(self, *args: Any) -> bytes:
        raise RequestDataTooBig(f"Request body is larger than {self.limit} bytes.")

    readline = read


# --- Cache-Control: no-store --------------------------------------------------------------


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on everything but the public API documents.

    The simplest rule that cannot miss a page: a subject id, an impact preview or a
    certificate appears on many pages and API answers, and a cached copy outlives both the
    session and the erasure. Health answers are no-store too: a cached "ok" is a lie.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is None or match.url_name not in CACHEABLE_URL_NAMES:
            patch_cache_control(response, no_store=True)
        return response


# --- client address ------------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str | None:
    """The address the outermost trusted proxy saw (``REMOTE_ADDR`` with no proxies).

    ``X-Forwarded-For`` is a list each proxy appends to; only its last N entries come from
    the N trusted proxies, anything left of them is what the client claimed.
    """
    proxies = settings.LETHE_TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return request.META.get("REMOTE_ADDR")
    addresses = [part.strip() for part in str(forwarded).split(",") if part.strip()]
    if not addresses:
        return request.META.get("REMOTE_ADDR")
    return addresses[-min(proxies, len(addresses))]


# --- sign-in audit ------------------------------------------------------------------------


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    login_failure_record(
        username=_username(credentials.get("username")),
        ip_address=client_ip(request) if request is not None else None,
        locked=request is not None and _failures(request) == "over",
    )


def _on_locked_out(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **kw: Any
) -> None:
    # axes signals again for every refused attempt during a lockout; only the failure
    # that reached the limit is the lockout itself.
    if _failures(request) == "at":
        login_lockout_record(username=_username(username), ip_address=ip_address)


def _failures(request: HttpRequest) -> str:
    """Where this attempt left the count axes keeps (its receiver runs before ours):
    ``below`` the limit, ``at`` it (this failure locked), or ``over`` it (refused while
    locked; axes leaves no count when it refuses without counting)."""
    count = getattr(request, "axes_failures_since_start", None)
    if count is None:
        return "over"
    limit = settings.AXES_FAILURE_LIMIT
    return "below" if count < limit else "at" if count == limit else "over"


def _username(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


user_login_failed.connect(_on_login_failed, dispatch_uid="lethe-login-failed-audit")
user_locked_out.connect(_on_locked_out, dispatch_uid="lethe-login-locked-out-audit")
