"""The HTTP side of the client: one connection pool, token auth, throttle retries, and the
API's error body turned into ``ApiError``. ``Client`` adds the endpoints on top."""

from __future__ import annotations

import json as json_lib
import time
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import quote

import httpx

from lethe_client.errors import ApiError

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT_S = 30.0
THROTTLE_RETRIES = 3


class Transport:
    """Requests to one server's API with one token (see ``Client``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "lethe-client/0.1"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- transport ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One API call (``path`` under ``/api/v1``); any 4xx or 5xx raises ``ApiError``.

        A 429 is retried after the ``Retry-After`` the server names, a few times: bulk
        pushes meet the API throttle, and waiting is what the server asks for.
        """
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        for attempt in range(THROTTLE_RETRIES + 1):
            response = self._http.request(
                method, path, json=json, params=query, headers=headers, content=content
            )
            if response.status_code != 429 or attempt == THROTTLE_RETRIES:
                break
            time.sleep(_retry_after(response))
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None


def _segment(value: int | str) -> str:
    """A path segment, percent-encoded (subject ids may hold ``/``, ``?`` or spaces)."""
    return quote(str(value), safe="")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dumps(value: Any) -> bytes:
    return json_lib.dumps(value, ensure_ascii=False).encode("utf-8")


def _retry_after(response: httpx.Response) -> float:
    """The seconds ``Retry-After`` asks for (1 s when absent or a date), capped at 60."""
    try:
        return max(0.0, min(float(response.headers.get("Retry-After", "1")), 60.0))
    except ValueError:
        return 1.0


def _api_error(response: httpx.Response) -> ApiError:
    """The API's ``{"error": {code, message, details}}``, or a stand-in for any other body."""
    request_id = response.headers.get("X-Request-ID")
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return ApiError(
            response.status_code,
            error["code"],
            str(error.get("message", "")),
            error.get("details"),
            request_id=request_id,
        )
    text = response.text[:500].strip() or response.reason_phrase
    return ApiError(
        response.status_code, f"http_{response.status_code}", text, request_id=request_id
    )
