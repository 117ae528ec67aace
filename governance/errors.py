"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

Services raise ``ApplicationError`` (or Django's ``ValidationError``); DRF raises its own
exceptions; Django raises ``RequestDataTooBig`` and friends while reading a body. Each is
mapped here, once, so a client never has to parse two error formats (DESIGN §7, STYLE §3.3).
A 5xx logs its traceback and names the request id (``governance.middleware``) in its body,
so the client's report of a failure leads the operator to its log record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS as DJANGO_NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from governance.middleware import request_id_current

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A failure the client can act on, raised by services and mapped to an HTTP answer."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        details: Any = None,
        status: int = status.HTTP_400_BAD_REQUEST,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.status = status


@dataclass(frozen=True)
class _Error:
    status: int
    code: str
    message: str
    details: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: render every known error in the one shape.

    Anything unknown returns None, so DRF re-raises it: Django then logs the traceback and
    ``server_error`` below answers with the same shape for API paths.
    """
    # Imported here: rest_framework.views loads the parser and authentication classes named
    # in the settings, and governance.api.ingest (the parser) imports this module, so a
    # top-level import is a cycle.
    from rest_framework.views import set_rollback

    error = _to_error(exc)
    if error is None:
        return None
    if error.status >= 500:
        # Known 5xx (a broker outage, say): DRF would log only the status line.
        logger.error("%s answered %d", type(exc).__name__, error.status, exc_info=exc)
        error = _with_request_id(error)
    set_rollback()  # an error inside ATOMIC_REQUESTS must not commit half a change
    return Response(error.body(), status=error.status, headers=error.headers)


def _to_error(exc: BaseException) -> _Error | None:
    if isinstance(exc, ApplicationError):
        return _Error(exc.status, exc.code, exc.message, exc.details)
    if (too_big := _payload_too_large(exc)) is not None:
        return too_big
    if isinstance(exc, DjangoValidationError):
        return _from_django_validation(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, exceptions.ValidationError):
        return _from_validation_detail(_field_errors(exc.detail))
    if isinstance(exc, exceptions.APIException):
        return _from_api_exception(exc)
    return None


def _with_request_id(error: _Error) -> _Error:
    details = error.details if isinstance(error.details, dict) else {}
    details = {**details, "request_id": request_id_current()}
    return _Error(error.status, error.code, error.message, details, error.headers)


# --- oversize bodies ------------------------------------------------------------------

_LIMITS: tuple[tuple[type[Exception], str, str], ...] = (
    (RequestDataTooBig, "DATA_UPLOAD_MAX_MEMORY_SIZE", "Request body is larger than {} bytes."),
    (TooManyFieldsSent, "DATA_UPLOAD_MAX_NUMBER_FIELDS", "Request has more than {} fields."),
    (TooManyFilesSent, "DATA_UPLOAD_MAX_NUMBER_FILES", "Request has more than {} files."),
)


def _payload_too_large(exc: BaseException) -> _Error | None:
    # Django raises these while a body is read; a parser may re-raise them wrapped (as a
    # ParseError, say), so the cause chain is searched too.
    seen: BaseException | None = exc
    while seen is not None:
        for kind, setting, template in _LIMITS:
            if isinstance(seen, kind):
                limit = getattr(settings, setting)
                message = template.format(limit)
                return _Error(413, "payload_too_large", message, {"limit": limit})
        seen = seen.__cause__ or seen.__context__
    return None


# --- validation -----------------------------------------------------------------------


def _from_django_validation(exc: DjangoValidationError) -> _Error:
    if hasattr(exc, "error_dict"):
        errors = {
            (api_settings.NON_FIELD_ERRORS_KEY if key == DJANGO_NON_FIELD_ERRORS else key): value
            for key, value in exc.message_dict.items()
        }
    else:
        errors = {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return _from_validation_detail(errors)


def _field_errors(detail: Any) -> Any:
    # `raise ValidationError("...")` gives a bare list; clients always get a field mapping.
    if isinstance(detail, dict):
        return detail
    return {api_settings.NON_FIELD_ERRORS_KEY: detail}


def _from_validation_detail(errors: Any) -> _Error:
    path, text = _first_error(errors)
    message = text if path in ("", api_settings.NON_FIELD_ERRORS_KEY) else f"{path}: {text}"
    return _Error(400, "invalid", message, errors)


def _first_error(detail: Any, path: str = "") -> tuple[str, str]:
    """The dotted path and text of the first leaf error, e.g. ``("lora.rank", "...")``."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value:
                # A nested object's own error (not a dict, say) names the object: "lora".
                if path and key == api_settings.NON_FIELD_ERRORS_KEY:
                    return _first_error(value, path)
                return _first_error(value, f"{path}.{key}" if path else str(key))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if item:
                # Lists of dicts come from nested `many=True` serializers: name the item.
                return _first_error(item, f"{path}[{index}]" if isinstance(item, dict) else path)
    else:
        return path, str(detail)
    return path, "Invalid input."


# --- everything else DRF raises ---------------------------------------------------------


def _from_api_exception(exc: exceptions.APIException) -> _Error:
    headers: dict[str, str] = {}
    details: Any = None
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if (wait := getattr(exc, "wait", None)) is not None:
        headers["Retry-After"] = str(int(wait))
        details = {"retry_after": int(wait)}
    if isinstance(exc.detail, dict | list):
        _, message = _first_error(exc.detail)
        details = exc.detail
    else:
        message = str(exc.detail)
    code = getattr(exc.detail, "code", None) or exc.default_code
    return _Error(exc.status_code, str(code), message, details, headers)


# --- Django's own 404 and 500 pages (handler404 / handler500 in governance.urls) ------


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _json_error(status_code: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(_Error(status_code, code, message, details).body(), status=status_code)


@csrf_exempt
def api_not_found(request: HttpRequest) -> HttpResponse:
    """Every unknown path under ``/api/``, any method: a JSON 404. CSRF-exempt because no
    endpoint is there to protect; otherwise an unknown POST got the HTML CSRF page."""
    return page_not_found(request, Http404())


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: JSON for URLs under ``/api/``, Django's HTML page elsewhere."""
    if _is_api(request):
        return _json_error(404, "not_found", f"No API endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: JSON for URLs under ``/api/``, Django's HTML page elsewhere."""
    if _is_api(request):
        # No exception text: it can hold internals; the traceback is in the server log,
        # under the request id given here (django.request logged it, with the id).
        message = "Internal server error."
        return _json_error(500, "server_error", message, {"request_id": request_id_current()})
    return defaults.server_error(request)
