"""Who may open which page, and the page renderer every view uses.

Role matrix (DESIGN §7: every page checks its role; superusers hold every role):

=====================  ===============  =================  ===========  ===========
page                   privacy_officer  auditor            ml_engineer  integration
=====================  ===============  =================  ===========  ===========
dashboard              requests+models  requests+models    models only  403
requests, detail       read + decide    read (no buttons)  403          403
new request            file             403                403          403
approve/reject/...     POST             403                403          403
certificate downloads  yes              yes                403          403
subject lineage        yes              yes                403          403
models, grid, progress yes              yes                yes          403
audit trail            yes              yes                403          403
audit re-verify (POST) yes              yes                403          403
=====================  ===============  =================  ===========  ===========

Integration accounts are service accounts: the REST API is their interface and every
page answers 403. ML engineers see the models they train but no data subjects: lineage
and requests name people, and the API's lineage endpoint is closed to them too. Anonymous
visitors are sent to the login page, whatever the method.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render

from governance.permissions import Role

View = Callable[..., HttpResponse]

OFFICERS = (Role.PRIVACY_OFFICER,)
# Requests, lineage and the audit trail name data subjects: officers and auditors only.
READERS = (Role.PRIVACY_OFFICER, Role.AUDITOR)
MODEL_READERS = (Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ML_ENGINEER)
SAFE = ("GET", "HEAD")
POST = ("POST",)


def user_roles(user: Any) -> frozenset[Role]:
    """The roles a user holds (one query); superusers hold them all."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    if user.is_superuser:
        return frozenset(Role)
    names = set(user.groups.values_list("name", flat=True))
    return frozenset(role for role in Role if role.value in names)


def role_required(*allowed: Role, methods: Collection[str] = SAFE) -> Callable[[View], View]:
    """Login first (a redirect, for any method), then the role (403), then the method (405).

    The role is checked before the method so that a POST by a reader is a plain 403,
    whichever URL it targets.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_roles(request.user) & set(allowed):
                raise PermissionDenied("This page needs one of the roles: " + ", ".join(allowed))
            if request.method not in methods:
                return HttpResponseNotAllowed(list(methods))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    """Render a page with ``ui``: the nav section and what the user's roles let them see."""
    roles = user_roles(request.user)
    ui = {
        "section": section,
        "roles": sorted(roles),
        "can_decide": Role.PRIVACY_OFFICER in roles,
        "can_read_requests": bool(roles & set(READERS)),
        "can_read_models": bool(roles & set(MODEL_READERS)),
        "can_audit": bool(roles & set(READERS)),
    }
    return render(request, template, {**context, "ui": ui}, status=status)
