"""The project's routes: the admin, the API (``governance.api.urls``), the sign-in pages and
the web UI (``governance.views.urls``)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from governance.errors import api_not_found

# JSON errors for URLs under /api/, Django's pages elsewhere (only used when DEBUG is off).
handler404 = "governance.errors.page_not_found"
handler500 = "governance.errors.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("governance.api.urls")),
    # Unknown API paths answer in the API's error shape even with DEBUG on.
    re_path(r"^api/", api_not_found),
    # The web UI: Django's login/logout (logout is a POST) and the pages.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("governance.views.urls")),
]
