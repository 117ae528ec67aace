"""Who may do what: the one role matrix, and the one check the API and the pages call.

Every endpoint and every page names an ``Action``; ``user_can`` answers from ``MATRIX``.
Superusers may do everything. Integration accounts are service accounts: the REST API is
their interface, so no page is open to them (``Channel.WEB`` drops that role), and the
API's own matrix is the same table read without that exception.

=======================  ===============  =======  ===========  ===========
action                   privacy_officer  auditor  integration  ml_engineer
=======================  ===============  =======  ===========  ===========
dataset_write            .                .        yes          yes
dataset_read_all         yes              yes      .            yes
dataset_grant            yes              .        .            .
catalog_read             yes              yes      yes          yes
model_write              .                .        .            yes
model_read               yes              yes      yes          yes
model_predict            .                .        yes          yes
lineage_read             yes              yes      yes          .
erasure_file             yes              .        yes          .
erasure_read             yes              yes      yes          .
erasure_read_all         yes              yes      .            .
erasure_decide           yes              .        .            .
audit_read               yes              yes      .            .
report_read              yes              yes      .            .
token_manage             yes              yes      yes          yes
token_manage_all         yes              .        .            .
webhook_read             yes              yes      yes          .
webhook_read_all         .                yes      .            .
webhook_manage           yes              .        yes          .
=======================  ===============  =======  ===========  ===========

ML engineers see the models they train but no data subjects: lineage and requests name
people. ``erasure_read`` lets an integration account read the requests it filed;
``erasure_read_all`` is what lets officers and auditors read everyone's.

Datasets follow the same pattern: ``dataset_read_all`` lets a role reach every dataset;
without it (integration accounts) an account reaches only the datasets it created or was
granted (``dataset_grant``, officers), for writes, reads and lineage alike
(``governance.selectors.datasets``). Every account manages its own API tokens
(``token_manage``); ``token_manage_all`` lets officers list and revoke anyone's.

Webhooks too: officers and integration accounts manage their own subscriptions
(``webhook_manage``, which also lets a recipient confirm an erasure it was sent);
``webhook_read_all`` lets auditors read every subscription and its deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from rest_framework.permissions import BasePermission

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class Role(StrEnum):
    """The four roles; each is a Django auth Group of the same name."""

    PRIVACY_OFFICER = "privacy_officer"
    AUDITOR = "auditor"
    INTEGRATION = "integration"
    ML_ENGINEER = "ml_engineer"


class Action(StrEnum):
    """What a request asks to do, named for the permission rather than for a role."""

    DATASET_WRITE = "dataset_write"
    DATASET_READ_ALL = "dataset_read_all"
    DATASET_GRANT = "dataset_grant"
    CATALOG_READ = "catalog_read"
    MODEL_WRITE = "model_write"
    MODEL_READ = "model_read"
    MODEL_PREDICT = "model_predict"
    MODEL_TRY = "model_try"  # the model page's "try it" panel: see a model before and after
    LINEAGE_READ = "lineage_read"
    ERASURE_FILE = "erasure_file"
    ERASURE_READ = "erasure_read"
    ERASURE_READ_ALL = "erasure_read_all"
    ERASURE_DECIDE = "erasure_decide"
    AUDIT_READ = "audit_read"
    REPORT_READ = "report_read"
    TOKEN_MANAGE = "token_manage"  # noqa: S105 (an action's name, not a secret)
    TOKEN_MANAGE_ALL = "token_manage_all"  # noqa: S105
    WEBHOOK_READ = "webhook_read"
    WEBHOOK_READ_ALL = "webhook_read_all"
    WEBHOOK_MANAGE = "webhook_manage"


class Channel(StrEnum):
    API = "api"
    WEB = "web"


_OFFICER, _AUDITOR, _INTEGRATION, _ENGINEER = (
    Role.PRIVACY_OFFICER,
    Role.AUDITOR,
    Role.INTEGRATION,
    Role.ML_ENGINEER,
)

MATRIX: dict[Action, frozenset[Role]] = {
    Action.DATASET_WRITE: frozenset({_INTEGRATION, _ENGINEER}),
    Action.DATASET_READ_ALL: frozenset({_OFFICER, _AUDITOR, _ENGINEER}),
    Action.DATASET_GRANT: frozenset({_OFFICER}),
    Action.CATALOG_READ: frozenset(Role),
    Action.MODEL_WRITE: frozenset({_ENGINEER}),
    Action.MODEL_READ: frozenset(Role),
    Action.MODEL_PREDICT: frozenset({_INTEGRATION, _ENGINEER}),
    Action.MODEL_TRY: frozenset({_OFFICER, _ENGINEER}),
    Action.LINEAGE_READ: frozenset({_OFFICER, _AUDITOR, _INTEGRATION}),
    Action.ERASURE_FILE: frozenset({_OFFICER, _INTEGRATION}),
    Action.ERASURE_READ: frozenset({_OFFICER, _AUDITOR, _INTEGRATION}),
    Action.ERASURE_READ_ALL: frozenset({_OFFICER, _AUDITOR}),
    Action.ERASURE_DECIDE: frozenset({_OFFICER}),
    Action.AUDIT_READ: frozenset({_OFFICER, _AUDITOR}),
    Action.REPORT_READ: frozenset({_OFFICER, _AUDITOR}),
    Action.TOKEN_MANAGE: frozenset(Role),
    Action.TOKEN_MANAGE_ALL: frozenset({_OFFICER}),
    Action.WEBHOOK_READ: frozenset({_OFFICER, _AUDITOR, _INTEGRATION}),
    Action.WEBHOOK_READ_ALL: frozenset({_AUDITOR}),
    Action.WEBHOOK_MANAGE: frozenset({_OFFICER, _INTEGRATION}),
}

# Service accounts use the API only.
_API_ONLY = frozenset({Role.INTEGRATION})


def roles_for(action: Action, channel: Channel = Channel.API) -> frozenset[Role]:
    """The roles that may do ``action`` through ``channel``."""
    allowed = MATRIX[action]
    return allowed - _API_ONLY if channel is Channel.WEB else allowed


_ROLES_CACHE = "_lethe_roles_cache"


def user_roles(user: Any) -> frozenset[Role]:
    """The roles a user holds (one query); superusers hold them all.

    Cached on the user object, as Django's ModelBackend caches permissions
    (``_perm_cache``): a request's user is loaded per request, so the permission check and
    the dataset scope of one request share one query, and a role granted later is seen by
    the next request. Roles are granted only when a user is created (``accounts``).
    """
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    if user.is_superuser:
        return frozenset(Role)
    cached = getattr(user, _ROLES_CACHE, None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    return user_roles_seed(user, user.groups.values_list("name", flat=True))


def user_roles_seed(user: Any, group_names: Iterable[str]) -> frozenset[Role]:
    """Cache on ``user`` the roles its groups (``group_names``) give, for ``user_roles``.

    For a caller that read the names with the user: token authentication reads the token,
    its user and the user's groups in one statement, so a request asks no roles query.
    """
    names = set(group_names)
    roles = frozenset(role for role in Role if role.value in names)
    setattr(user, _ROLES_CACHE, roles)
    return roles


def roles_can(held: frozenset[Role], action: Action, channel: Channel = Channel.API) -> bool:
    """``user_can`` for roles already looked up (a page asks several questions at once)."""
    return bool(held & roles_for(action, channel))


def user_can(user: Any, action: Action, channel: Channel = Channel.API) -> bool:
    """Whether ``user`` may do ``action`` through ``channel``: the one permission check."""
    return roles_can(user_roles(user), action, channel)


class _Allowed(BasePermission):
    """DRF's side of ``user_can``; built per action by ``allowed``."""

    action: ClassVar[Action]
    message = "This action requires a role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        # An anonymous request is refused with 401 (DRF asks the authenticator for a
        # challenge), a signed-in one without the role with 403.
        return user_can(request.user, self.action)


def allowed(action: Action) -> type[BasePermission]:
    """A DRF permission class for API views that do ``action``."""
    listed = ", ".join(role for role in Role if role in roles_for(action))

    class Allowed(_Allowed):
        message = f"This action requires one of the roles: {listed}."

    Allowed.action = action
    Allowed.__name__ = Allowed.__qualname__ = f"Allowed({action.value})"
    return Allowed
