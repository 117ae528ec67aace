"""What every API module shares: strict input serializers, one way to validate, the error
body as the OpenAPI document shows it, the ``?format=`` negotiation, and the schema class
that makes the document say what validation does (``LetheAutoSchema``).

Output serializers in the resource modules render what the views gather from services and
selectors, and they are what ``/api/v1/schema/`` publishes, so a client generated from it
knows every field (tests/governance/test_api_schema.py keeps it so). Stored documents are
served as stored and only described: a certificate (its signature covers its exact bytes)
and an impact preview; the report's JSON comes rendered from ``services.reports``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from governance.errors import ApplicationError
from governance.subject_refs import (
    MAX_LENGTH,
    SubjectRefError,
    subject_ref_clean,
    subject_ref_normal,
)

# The widest integer a column, a lookup or an SQL OFFSET takes (PostgreSQL's bigint): past
# it the database raises a DataError, a 500, where the client should be told its number.
DB_INT_MAX = 2**63 - 1


class StrictSerializer(serializers.Serializer[Any]):
    """Rejects fields it does not declare, naming them (a typo must not pass silently)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers, which DRF's CharField turns into text silently."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class DbIntegerField(serializers.IntegerField):
    """An integer a query can use: within the bigint range unless tighter bounds are given
    (``?offset=`` paging and ids a view looks up)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", -DB_INT_MAX - 1)
        kwargs.setdefault("max_value", DB_INT_MAX)
        super().__init__(**kwargs)


class SubjectRefField(StrictCharField):
    """A data subject's id in its one comparable form (``governance.subject_refs``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        name = self.field_name or "subject_id"
        try:
            return subject_ref_clean(super().to_internal_value(data), field=name)
        except SubjectRefError as exc:
            # The error body names the field already: "subject_id: subject_id: ..." else.
            raise serializers.ValidationError(str(exc).removeprefix(f"{name}: ")) from None


def subject_ref_from_path(value: str) -> str:
    """A subject id taken from a URL, in NFC; invisible characters are a 400 naming it."""
    try:
        return subject_ref_normal(value)
    except SubjectRefError as exc:
        raise ApplicationError(
            code="invalid", message=str(exc), details={"subject_id": [str(exc)]}
        ) from None


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose choices are one named enum in the OpenAPI document.

    A model's status appears in several bodies (a request, its history, the report rows);
    naming the set once gives clients one enum type for it, where drf-spectacular alone
    would number the sets that share a field name.
    """

    def __init__(self, choices: Sequence[Any], *, enum_name: str, **kwargs: Any) -> None:
        super().__init__(choices, **kwargs)
        self.enum_name = enum_name


# drf-spectacular's registry hook (__init_subclass__) is unannotated.
class NamedChoiceFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """Publishes a ``NamedChoiceField``'s choices as the component ``enum_name``."""

    target_class = NamedChoiceField

    def get_name(self) -> str:
        return str(self.target.enum_name)

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.target.choices)}


def validated(
    serializer_class: type[serializers.Serializer[Any]], data: Any, prefix: str = ""
) -> dict[str, Any]:
    """``data`` checked by ``serializer_class``; a 400 names each bad field, under ``prefix``
    for a nested object (``lora.rank``), so the client knows exactly what to fix."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        errors = serializer.errors
        raise serializers.ValidationError(
            {f"{prefix}.{k}" if prefix else k: v for k, v in errors.items()}
        )
    return dict(serializer.validated_data)


class ViewFormatNegotiation(DefaultContentNegotiation):
    """``?format=`` picks the view's own output (JSON, CSV or PDF), not a DRF renderer, which
    would answer 404 for a format it has no renderer for."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


# --- the error body (governance.errors renders it) ----------------------------------------


class ErrorDetailSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ErrorDetail"

    code = serializers.CharField(help_text="Stable, machine-readable: invalid, not_found, ...")
    message = serializers.CharField(help_text="For people; names the field first: `name: ...`.")
    details = serializers.JSONField(
        allow_null=True, help_text="Field errors by name, or what the code needs (a limit)."
    )


class ErrorSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "Error"

    error = ErrorDetailSerializer()


_ERROR_MEANINGS = {
    400: "Invalid input; the message names the field.",
    401: "No credentials, or a bad token.",
    403: "The caller's role may not do this.",
    404: "No such object, or not one the caller may see.",
    409: "The object's state does not allow this now.",
    406: "The Accept header names no type the endpoint gives.",
    413: "The body is over the upload limit.",
    415: "An upload of a type the endpoint cannot read.",
    422: "The Idempotency-Key was used before with a different body.",
    429: "Too many requests; retry after the seconds in Retry-After.",
}
# Every endpoint behind a role answers these two.
SIGNED_IN = (401, 403)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for ``statuses``, all in the one error shape."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_MEANINGS[code])
        for code in sorted(set(statuses))
    }


class LetheAutoSchema(AutoSchema):
    """``DEFAULT_SCHEMA_CLASS``: the document says what validation does, for every view.

    Each operation also lists the errors any view of its kind can give, so no view has
    to remember them: 401 and 403 behind a role, 400, 413 and 415 with a body, 406 (the
    ``Accept`` header), 429 when throttled. A ``StrictSerializer`` body refuses unknown
    fields (``additionalProperties: false``), and a request string that may not be blank
    has ``minLength: 1`` (drf-spectacular adds it only to query parameters by default).
    """

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        # extend_schema replaces get_response_serializers on the view's schema, so the
        # implied errors are added to what it gives, whatever the view declared.
        bodies: dict[str, Any] = super()._get_response_bodies(direction)
        for code, response in error_responses(*self._implied_errors()).items():
            if str(code) not in bodies:
                # drf-spectacular's private helpers are unannotated.
                bodies[str(code)] = self._get_response_for_code(response, str(code))  # type: ignore[no-untyped-call]
        return dict(sorted(bodies.items()))

    def _implied_errors(self) -> list[int]:
        codes = [406]
        public = all(
            isinstance(p, type) and issubclass(p, AllowAny) for p in self.view.permission_classes
        )
        if not public:
            codes += SIGNED_IN
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            codes += [400, 413, 415]
        if self.view.throttle_classes:
            codes.append(429)
        return codes

    # drf-spectacular's private mappers are unannotated; each takes bypass_extensions too.
    def _map_serializer(self, serializer: Any, direction: Any, *args: Any) -> dict[str, Any]:
        mapped: dict[str, Any] = super()._map_serializer(serializer, direction, *args)  # type: ignore[no-untyped-call]
        if direction == "request" and isinstance(serializer, StrictSerializer):
            mapped["additionalProperties"] = False
        return mapped

    def _map_serializer_field(self, field: Any, direction: Any, *args: Any) -> dict[str, Any]:
        result: dict[str, Any] = super()._map_serializer_field(field, direction, *args)  # type: ignore[no-untyped-call]
        blank_refused = isinstance(field, serializers.CharField) and not field.allow_blank
        if blank_refused and direction == "request" and result.get("type") == "string":
            result.setdefault("minLength", 1)
        return result
