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


def s3_artifacts_storage(
    *, bucket: str, endpoint_url: str | None, region: str | None, prefix: str
) -> dict[str, Any]:
    """``STORAGES["artifacts"]`` for an S3 bucket (tests point it at their own bucket)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url,
            "region_name": region,
            "location": prefix,
            # Stage files are private and written once under their own key.
            "default_acl": None,
            "querystring_auth": False,
            "file_overwrite": True,
            # S3-compatible servers (SeaweedFS, MinIO) answer on one host, path-style.
            "addressing_style": "path" if endpoint_url else None,
        },
    }


def artifacts_storage(
    *, bucket: str | None, endpoint_url: str | None, region: str | None, prefix: str
) -> dict[str, Any]:
    """``STORAGES["artifacts"]``: the S3 bucket when one is named, else the local folder."""
    if bucket:
        return s3_artifacts_storage(
            bucket=bucket, endpoint_url=endpoint_url, region=region, prefix=prefix
        )
    return {
        "BACKEND": "governance.artifacts.AtomicFileSystemStorage",
        # No "location": the storage follows ARTIFACT_ROOT (governance/artifacts.py).
        "OPTIONS": {"allow_overwrite": True},
    }
