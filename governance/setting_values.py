"""Parsers for the settings whose values are more than a boolean, a number or a path.

``governance/settings.py`` reads the environment and hands the raw text here; each parser
refuses a malformed value at start-up with a message naming the variable, rather than
letting it fail at the first request (or, for the proxy header, silently never match).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def proxy_ssl_header(value: str | None) -> tuple[str, str] | None:
    """``"X-Forwarded-Proto: https"`` → ``("HTTP_X_FORWARDED_PROTO", "https")`` (Django's form)."""
    if value is None:
        return None
    name, colon, expected = (part.strip() for part in value.partition(":"))
    if not colon or not re.fullmatch(r"[A-Za-z0-9-]+", name) or not expected:
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={value!r}: give 'Header-Name: value', "
            "e.g. 'X-Forwarded-Proto: https'"
        )
    return "HTTP_" + name.upper().replace("-", "_"), expected


def throttle_rate(name: str, raw: str) -> str | None:
    """A DRF rate (``100/minute``), or None for ``off``; refused here rather than at a request."""
    if raw.lower() == "off":
        return None
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", raw):
        raise ImproperlyConfigured(f"{name}={raw!r}: give N/second, N/minute, N/hour, N/day or off")
    return raw


def cache_from_url(url: str | None) -> dict[str, Any]:
    """CACHES["default"] for ``redis://`` / ``rediss://`` URLs; a memory cache when unset."""
    if url is None:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "lethe"}
    if urlsplit(url).scheme not in ("redis", "rediss"):
        raise ImproperlyConfigured("CACHE_URL: give redis://host:port/db (or leave it unset)")
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "lethe",
    }
