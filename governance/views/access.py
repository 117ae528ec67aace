"""The page check and the page renderer every view uses.

Every page names the ``Action`` it performs, and ``page`` asks the one role matrix
(``governance.permissions.MATRIX``) through ``user_can(..., Channel.WEB)``. Which roles
open a page therefore follows from that table; this one says which action each page is:

=======================  ====================================================
page                     action
=======================  ====================================================
dashboard                model_read (its request queue: erasure_read)
requests, detail         erasure_read (the decision buttons: erasure_decide)
new request              erasure_file
approve/reject/...       erasure_decide (POST only)
certificate downloads    erasure_read
subject lineage          lineage_read
models, grid, progress   model_read
audit trail, re-verify   audit_read (re-verify is a POST)
reports                  report_read
webhooks, deliveries     webhook_read (create, rotate, test, redeliver: webhook_manage)
=======================  ====================================================

The web channel drops the integration role: service accounts use the REST API and every
page answers them 403. Anonymous visitors are sent to the login page, whatever the method.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render

from governance.permissions import Action, Channel, Role, roles_can, roles_for, user_can, user_roles

View = Callable[..., HttpResponse]

SAFE = ("GET", "HEAD")
POST = ("POST",)

# What the shared layout shows or hides (navigation, "New request", decision buttons).
UI_FLAGS = {
    "can_decide": Action.ERASURE_DECIDE,
    "can_read_requests": Action.ERASURE_READ,
    "can_read_models": Action.MODEL_READ,
    "can_audit": Action.AUDIT_READ,
    "can_webhooks": Action.WEBHOOK_READ,
}


def page(action: Action, *, methods: Collection[str] = SAFE) -> Callable[[View], View]:
    """Login first (a redirect, for any method), then ``action`` (403), then the method (405).

    The permission is checked before the method so that a POST by a reader is a plain 403,
    whichever URL it targets.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_can(request.user, action, Channel.WEB):
                raise PermissionDenied(_refusal(action))
            if request.method not in methods:
                return HttpResponseNotAllowed(list(methods))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _refusal(action: Action) -> str:
    """The 403 page's reason: the roles that may, in the matrix's role order."""
    allowed = roles_for(action, Channel.WEB)
    return "This page needs one of the roles: " + ", ".join(r for r in Role if r in allowed)


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
    ui: dict[str, Any] = {"section": section, "roles": sorted(roles)}
    ui.update({flag: roles_can(roles, act, Channel.WEB) for flag, act in UI_FLAGS.items()})
    return render(request, template, {**context, "ui": ui}, status=status)
