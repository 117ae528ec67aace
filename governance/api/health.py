"""``GET health/``: database, broker and worker liveness, no login (for orchestrators)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.selectors.workers import system_health

UP_DOWN = ["up", "down"]


class HealthChecksSerializer(serializers.Serializer[dict[str, str]]):
    class Meta:
        ref_name = "HealthChecks"

    database = serializers.ChoiceField(choices=UP_DOWN, help_text="SELECT 1 answered.")
    broker = serializers.ChoiceField(
        choices=UP_DOWN,
        help_text="A new broker connection opened within 2 s (Redis answered PING); for the "
        "embedded file-system broker, its queue folder is writable.",
    )
    workers = serializers.ChoiceField(
        choices=UP_DOWN,
        help_text="Every queue (training, control, default) has a worker whose heartbeat is "
        "fresher than LETHE_WORKER_STALE_S.",
    )


class HealthWorkersSerializer(serializers.Serializer[dict[str, Any]]):
    class Meta:
        ref_name = "HealthWorkers"

    alive = serializers.IntegerField(help_text="Workers with a fresh heartbeat.")
    queues = serializers.DictField(
        child=serializers.IntegerField(), help_text="Live workers consuming each queue."
    )
    missing_queues = serializers.ListField(
        child=serializers.CharField(), help_text="Queues no live worker consumes."
    )
    last_seen_s = serializers.FloatField(
        allow_null=True, help_text="Seconds since the freshest heartbeat; null: none seen."
    )
    stale_after_s = serializers.IntegerField(help_text="LETHE_WORKER_STALE_S.")


class HealthApi(APIView):
    """200 when the database, the broker and a worker for every queue are up; 503 otherwise,
    naming what is down. Unauthenticated and cheap (one query, one broker connection), it
    shows counts and ages only: no hostnames, pids or addresses."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class OutputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "HealthOutput"

        status = serializers.ChoiceField(choices=["ok", "error"])
        database = serializers.CharField(help_text="Database vendor: sqlite or postgresql.")
        checks = HealthChecksSerializer()
        down = serializers.ListField(
            child=serializers.ChoiceField(choices=["database", "broker", "workers"]),
            help_text="What is down; empty when status is ok.",
        )
        workers = HealthWorkersSerializer()

    @extend_schema(responses={200: OutputSerializer, 503: OutputSerializer})
    def get(self, request: Request) -> Response:
        health = system_health(now=timezone.now())
        code = (
            status.HTTP_200_OK if health["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        )
        response = Response(self.OutputSerializer(health).data, status=code)
        response["Cache-Control"] = "no-store"
        return response
