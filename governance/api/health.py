"""``GET health/``: liveness and database reachability, no login."""

from __future__ import annotations

from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class HealthApi(APIView):
    """Liveness and database reachability, for load balancers and the demo's startup wait."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class OutputSerializer(serializers.Serializer[dict[str, str]]):
        class Meta:
            ref_name = "HealthOutput"

        status = serializers.ChoiceField(choices=["ok", "error"])
        database = serializers.CharField(help_text="Database vendor: sqlite or postgresql.")

    @extend_schema(responses={200: OutputSerializer, 503: OutputSerializer})
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            body = self.OutputSerializer({"status": "error", "database": connection.vendor})
            return Response(body.data, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(self.OutputSerializer({"status": "ok", "database": connection.vendor}).data)
