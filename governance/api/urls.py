"""The API's routes, mounted at ``/api/v1/`` by ``governance.urls``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from governance.api import (
    audit,
    certificates,
    confirmations,
    datasets,
    erasure,
    generate,
    health,
    lineage,
    models,
    records,
    reports,
    tokens,
    webhooks,
)

# An officer's decisions on a request: (path segment, view, URL name).
DECISIONS = (
    ("approve", erasure.ErasureRequestApproveApi, "api-erasure-approve"),
    ("reject", erasure.ErasureRequestRejectApi, "api-erasure-reject"),
    ("extend", erasure.ErasureRequestExtendApi, "api-erasure-extend"),
    ("retry", erasure.ErasureRequestRetryApi, "api-erasure-retry"),
)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("health/", health.HealthApi.as_view(), name="api-health"),
    path("datasets/", datasets.DatasetCreateApi.as_view(), name="api-dataset-create"),
    path("datasets/<int:dataset_id>/", datasets.DatasetDetailApi.as_view(), name="api-dataset"),
    path(
        "datasets/<int:dataset_id>/grants/",
        datasets.DatasetGrantListCreateApi.as_view(),
        name="api-dataset-grants",
    ),
    path(
        "datasets/<int:dataset_id>/grants/<str:username>/",
        datasets.DatasetGrantDeleteApi.as_view(),
        name="api-dataset-grant",
    ),
    path(
        "datasets/<int:dataset_id>/records/",
        records.RecordUpsertApi.as_view(),
        name="api-records-upsert",
    ),
    path(
        "subjects/<path:subject_id>/lineage/",
        lineage.SubjectLineageApi.as_view(),
        name="api-subject-lineage",
    ),
    path("models/", models.ModelCreateApi.as_view(), name="api-model-create"),
    path(
        "erasure-requests/",
        erasure.ErasureRequestListCreateApi.as_view(),
        name="api-erasure-requests",
    ),
    path(
        "erasure-requests/<int:request_id>/",
        erasure.ErasureRequestDetailApi.as_view(),
        name="api-erasure-request",
    ),
    *(
        path(f"erasure-requests/<int:request_id>/{decision}/", view.as_view(), name=name)
        for decision, view, name in DECISIONS
    ),
    path(
        "erasure-requests/<int:request_id>/certificate/",
        certificates.CertificateApi.as_view(),
        name="api-erasure-certificate",
    ),
    path(
        "erasure-requests/<int:request_id>/confirmations/",
        confirmations.ErasureConfirmationApi.as_view(),
        name="api-erasure-confirmations",
    ),
    path("webhooks/", webhooks.WebhookListCreateApi.as_view(), name="api-webhooks"),
    path("webhooks/<int:webhook_id>/", webhooks.WebhookDetailApi.as_view(), name="api-webhook"),
    path(
        "webhooks/<int:webhook_id>/rotate-secret/",
        webhooks.WebhookRotateSecretApi.as_view(),
        name="api-webhook-rotate",
    ),
    path(
        "webhooks/<int:webhook_id>/test/",
        webhooks.WebhookTestApi.as_view(),
        name="api-webhook-test",
    ),
    path(
        "webhooks/<int:webhook_id>/deliveries/",
        webhooks.WebhookDeliveryListApi.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver/",
        webhooks.WebhookRedeliverApi.as_view(),
        name="api-webhook-redeliver",
    ),
    path(
        "certificates/public-key/",
        certificates.PublicKeyApi.as_view(),
        name="api-certificate-public-key",
    ),
    path(
        "certificates/public-keys/",
        certificates.PublicKeyListApi.as_view(),
        name="api-certificate-public-keys",
    ),
    path(
        "certificates/verify/",
        certificates.CertificateVerifyApi.as_view(),
        name="api-certificate-verify",
    ),
    path("tokens/", tokens.TokenListCreateApi.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/revoke/", tokens.TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("tokens/<int:token_id>/expire/", tokens.TokenExpireApi.as_view(), name="api-token-expire"),
    path("audit/events/", audit.AuditEventListApi.as_view(), name="api-audit-events"),
    path("audit/verify/", audit.AuditVerifyApi.as_view(), name="api-audit-verify"),
    path("reports/erasures/", reports.ErasureReportApi.as_view(), name="api-report-erasures"),
    path("models/<int:model_id>/", models.ModelDetailApi.as_view(), name="api-model"),
    path("models/<int:model_id>/train/", models.ModelTrainApi.as_view(), name="api-model-train"),
    path(
        "models/<int:model_id>/predict/", models.ModelPredictApi.as_view(), name="api-model-predict"
    ),
    path(
        "models/<int:model_id>/generate/",
        generate.ModelGenerateApi.as_view(),
        name="api-model-generate",
    ),
]
