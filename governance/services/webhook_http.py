"""Where a webhook may be sent, and the one HTTP POST that sends it.

SSRF rules, checked when a subscription is saved and again before every attempt: the URL
is https, or http to a host in ``LETHE_WEBHOOK_ALLOWED_HOSTS``; its host resolves, and no
address it resolves to is private, loopback, link-local (the cloud metadata endpoints
among them), multicast, reserved or unspecified, unless the host is allowed by that
setting. The POST connects to the address that was checked (a DNS answer that changes
between the check and the connection, "rebinding", cannot move it), follows no redirect,
and reads at most ``BODY_LIMIT`` bytes of the answer.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from governance.errors import ApplicationError

BODY_LIMIT = 64 * 1024
# Well-known metadata addresses that are not in a private range everywhere (Alibaba's).
_METADATA = frozenset({ipaddress.ip_address("100.100.100.200")})
USER_AGENT = "Lethe-Webhooks/1"


class WebhookUrlError(ApplicationError):
    """A URL Lethe refuses to send to; the message names ``url``."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"url: {problem}", code="invalid_url", details={"url": [problem]}, status=400
        )


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status code, or an error; and how long it took."""

    status: int | None
    latency_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _allowed_host(host: str) -> bool:
    allowed = {h.lower() for h in getattr(settings, "LETHE_WEBHOOK_ALLOWED_HOSTS", [])}
    return host.lower() in allowed


def address_refused(address: str) -> bool:
    """Whether ``address`` is one a webhook may never reach unless its host is allowed."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
        or ip in _METADATA
    )


def webhook_url_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL a subscription may name; ``WebhookUrlError`` else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"not a valid URL ({exc})") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise WebhookUrlError("must be an https:// URL with a host")
    if parts.scheme == "http" and not _allowed_host(host):
        raise WebhookUrlError(
            f"http is allowed only to hosts in LETHE_WEBHOOK_ALLOWED_HOSTS; use https for {host}"
        )
    if parts.username or parts.password:
        raise WebhookUrlError("must not carry a user name or password")
    if parts.fragment:
        raise WebhookUrlError("must not have a #fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def webhook_url_resolve(url: str) -> Target:
    """Check ``url`` and resolve its host to one address it may be sent to.

    Every address the host resolves to must pass (an attacker's name that also resolves
    to 169.254.169.254 is refused whichever address a connection would pick).
    """
    scheme, host, port, path = webhook_url_parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlError(f"host {host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise WebhookUrlError(f"host {host} does not resolve")
    if not _allowed_host(host):
        refused = [a for a in addresses if address_refused(a)]
        if refused:
            raise WebhookUrlError(
                f"host {host} resolves to a private, loopback, link-local or reserved "
                f"address ({refused[0]}); allow it with LETHE_WEBHOOK_ALLOWED_HOSTS"
            )
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the checked address, with the URL's host in the Host header."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address; the certificate is checked against the URL's host."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def webhook_post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` once; never raises for a network failure (the ``Answer`` says it).

    ``timeout`` bounds the connection and each read; the answer's body is read up to
    ``BODY_LIMIT`` and dropped. A 3xx is a failure: redirects are not followed.
    """
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target, timeout)
    started = time.monotonic()
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        response = connection.getresponse()
        response.read(BODY_LIMIT)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return Answer(status=None, latency_ms=elapsed, error=reason[:500])
    finally:
        connection.close()
    elapsed = int((time.monotonic() - started) * 1000)
    if 200 <= status < 300:
        return Answer(status=status, latency_ms=elapsed)
    what = "redirect not followed" if 300 <= status < 400 else "not a 2xx answer"
    return Answer(status=status, latency_ms=elapsed, error=f"HTTP {status}: {what}")
