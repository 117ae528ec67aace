from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import Http404
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from governance import apis, apis_erasure, apis_reports
from governance.errors import page_not_found

api = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("health/", apis.HealthApi.as_view(), name="api-health"),
    path("datasets/", apis.DatasetCreateApi.as_view(), name="api-dataset-create"),
    path("datasets/<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="api-dataset"),
    path(
        "datasets/<int:dataset_id>/records/",
        apis.RecordUpsertApi.as_view(),
        name="api-records-upsert",
    ),
    path(
        "subjects/<path:subject_id>/lineage/",
        apis.SubjectLineageApi.as_view(),
        name="api-subject-lineage",
    ),
    path("models/", apis.ModelCreateApi.as_view(), name="api-model-create"),
    path(
        "erasure-requests/",
        apis_erasure.ErasureRequestListCreateApi.as_view(),
        name="api-erasure-requests",
    ),
    path(
        "erasure-requests/<int:request_id>/",
        apis_erasure.ErasureRequestDetailApi.as_view(),
        name="api-erasure-request",
    ),
    path(
        "erasure-requests/<int:request_id>/approve/",
        apis_erasure.ErasureRequestApproveApi.as_view(),
        name="api-erasure-approve",
    ),
    path(
        "erasure-requests/<int:request_id>/reject/",
        apis_erasure.ErasureRequestRejectApi.as_view(),
        name="api-erasure-reject",
    ),
    path(
        "erasure-requests/<int:request_id>/extend/",
        apis_erasure.ErasureRequestExtendApi.as_view(),
        name="api-erasure-extend",
    ),
    path(
        "erasure-requests/<int:request_id>/retry/",
        apis_erasure.ErasureRequestRetryApi.as_view(),
        name="api-erasure-retry",
    ),
    path(
        "erasure-requests/<int:request_id>/certificate/",
        apis_erasure.CertificateApi.as_view(),
        name="api-erasure-certificate",
    ),
    path(
        "certificates/public-key/",
        apis_erasure.PublicKeyApi.as_view(),
        name="api-certificate-public-key",
    ),
    path(
        "certificates/verify/",
        apis_erasure.CertificateVerifyApi.as_view(),
        name="api-certificate-verify",
    ),
    path("audit/events/", apis.AuditEventListApi.as_view(), name="api-audit-events"),
    path("audit/verify/", apis.AuditVerifyApi.as_view(), name="api-audit-verify"),
    path("reports/erasures/", apis_reports.ErasureReportApi.as_view(), name="api-report-erasures"),
    path("models/<int:model_id>/", apis.ModelDetailApi.as_view(), name="api-model"),
    path("models/<int:model_id>/train/", apis.ModelTrainApi.as_view(), name="api-model-train"),
    path(
        "models/<int:model_id>/predict/", apis.ModelPredictApi.as_view(), name="api-model-predict"
    ),
]

# JSON errors for URLs under /api/, Django's pages elsewhere (only used when DEBUG is off).
handler404 = "governance.errors.page_not_found"
handler500 = "governance.errors.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api)),
    # Unknown API paths answer in the API's error shape even with DEBUG on.
    re_path(r"^api/", lambda request: page_not_found(request, Http404())),
    # The web UI: Django's login/logout (logout is a POST) and the pages.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("governance.views.urls")),
]
