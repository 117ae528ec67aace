"""Throwaway API views for the auth, error and ingest tests (``pytest.mark.urls``)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from django.urls import path
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.ingest import INGEST_PARSER_CLASSES, rows_from_request
from governance.errors import ApplicationError
from governance.permissions import Action, allowed

handler404 = "governance.errors.page_not_found"
handler500 = "governance.errors.server_error"


class EngineerOnlyApi(APIView):
    permission_classes = (allowed(Action.MODEL_WRITE),)

    def get(self, request):
        return Response({"user": request.user.username})


class OfficerOrAuditorApi(APIView):
    permission_classes = (allowed(Action.AUDIT_READ),)

    def get(self, request):
        return Response({"user": request.user.username})


class WhoAmIApi(APIView):
    """Any authenticated user (the project default permission)."""

    def get(self, request):
        return Response({"user": request.user.username, "token": request.auth.prefix})


def _too_big_wrapped():
    try:
        raise RequestDataTooBig("too big")
    except RequestDataTooBig as exc:
        raise exceptions.ParseError("Multipart form parse error") from exc


RAISERS = {
    "application": lambda: ApplicationError(
        code="model_not_ready", message="Train it first.", details={"model": 3}, status=409
    ),
    "application-default": lambda: ApplicationError("Plain failure."),
    "django-validation-dict": lambda: DjangoValidationError({"name": ["Bad name."]}),
    "django-validation-all": lambda: DjangoValidationError({"__all__": ["Clash."]}),
    "django-validation-plain": lambda: DjangoValidationError("Plain message."),
    "drf-validation-plain": lambda: exceptions.ValidationError("Not like that."),
    "django-permission": lambda: DjangoPermissionDenied("nope"),
    "drf-permission": lambda: exceptions.PermissionDenied(),
    "http404": lambda: Http404("no such thing"),
    "drf-not-found": lambda: exceptions.NotFound(),
    "throttled": lambda: exceptions.Throttled(wait=7),
    "too-many-fields": lambda: TooManyFieldsSent("too many"),
    "too-big": lambda: RequestDataTooBig("too big"),
    "not-acceptable": lambda: exceptions.NotAcceptable(),
}


class RaiseApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request, name):
        if name == "too-big-wrapped":
            _too_big_wrapped()
        if name == "crash":
            raise RuntimeError("secret internals")
        raise RAISERS[name]()


class LoraSerializer(serializers.Serializer):
    rank = serializers.IntegerField(min_value=1)


class ModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    lora = LoraSerializer()


class ValidateApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request):
        ModelSerializer(data=request.data).is_valid(raise_exception=True)
        return Response({"ok": True})


class EchoRowsApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    parser_classes = INGEST_PARSER_CLASSES

    def post(self, request):
        return Response({"rows": rows_from_request(request)})


def html_crash(request):
    raise RuntimeError("boom")


def html_ok(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/engineer/", EngineerOnlyApi.as_view()),
    path("api/readers/", OfficerOrAuditorApi.as_view()),
    path("api/whoami/", WhoAmIApi.as_view()),
    path("api/raise/<str:name>/", RaiseApi.as_view()),
    path("api/validate/", ValidateApi.as_view()),
    path("api/rows/", EchoRowsApi.as_view()),
    path("crash/", html_crash),
    path("ok/", html_ok),
]
