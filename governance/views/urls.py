"""The web UI's routes (the API lives under /api/v1/, see governance.urls)."""

from __future__ import annotations

from django.urls import path

from governance.views import audit, dashboard, lineage, models, reports, requests, webhooks

urlpatterns = [
    path("", dashboard.dashboard, name="web-dashboard"),
    path("requests/", requests.request_list, name="web-requests"),
    path("requests/new/", requests.request_new, name="web-request-new"),
    path("requests/<int:pk>/", requests.request_detail, name="web-request"),
    path("requests/<int:pk>/approve/", requests.request_approve, name="web-request-approve"),
    path("requests/<int:pk>/reject/", requests.request_reject, name="web-request-reject"),
    path("requests/<int:pk>/extend/", requests.request_extend, name="web-request-extend"),
    path("requests/<int:pk>/retry/", requests.request_retry, name="web-request-retry"),
    path(
        "requests/<int:pk>/certificate.json",
        requests.certificate_json,
        name="web-certificate-json",
    ),
    path(
        "requests/<int:pk>/certificate.pdf",
        requests.certificate_pdf_download,
        name="web-certificate-pdf",
    ),
    path("lineage/", lineage.subject_lineage, name="web-lineage"),
    path("models/", models.model_list, name="web-models"),
    path("models/<int:pk>/", models.model_page, name="web-model"),
    path("models/<int:pk>/progress.json", models.model_progress, name="web-model-progress"),
    path("models/<int:pk>/try/", models.model_try, name="web-model-try"),
    path("audit/", audit.audit_trail, name="web-audit"),
    path("audit/verify/", audit.audit_verify, name="web-audit-verify"),
    path("reports/", reports.report_page, name="web-reports"),
    path("webhooks/", webhooks.webhook_list, name="web-webhooks"),
    path("webhooks/new/", webhooks.webhook_create, name="web-webhook-create"),
    path("webhooks/<int:pk>/", webhooks.webhook_detail, name="web-webhook"),
    path("webhooks/<int:pk>/rotate/", webhooks.webhook_rotate, name="web-webhook-rotate"),
    path("webhooks/<int:pk>/test/", webhooks.webhook_test, name="web-webhook-test"),
    path("webhooks/<int:pk>/delete/", webhooks.webhook_delete, name="web-webhook-delete"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_id>/redeliver/",
        webhooks.webhook_redeliver,
        name="web-webhook-redeliver",
    ),
]
