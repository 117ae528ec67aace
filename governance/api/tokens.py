"""``tokens/``: list, create, expire and revoke API tokens.

Every account manages its own tokens; privacy officers may list, expire and revoke
anyone's (``selectors.tokens.api_tokens_visible``). A token is created for the caller
only, by a signed-in session (never by another token, so revoking a leaked key is enough),
and its key is in the creation answer and nowhere else: the database keeps its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import (
    SIGNED_IN,
    DbIntegerField,
    NamedChoiceField,
    StrictCharField,
    StrictSerializer,
    error_responses,
    validated,
)
from governance.errors import ApplicationError
from governance.models import ApiToken
from governance.permissions import Action, allowed
from governance.selectors.tokens import api_tokens_visible
from governance.services.accounts import (
    NAME_MAX_LENGTH,
    api_token_expire,
    api_token_issue,
    api_token_revoke,
)

# Another account's token is a 404; a revoked or already expired one a 409.
TOKEN_CHANGE_ERRORS = error_responses(400, 404, 409, *SIGNED_IN)


class TokenSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ApiToken"

    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The key's first characters, to tell keys apart.")
    name = serializers.CharField()
    user = serializers.CharField(help_text="The account the token signs in as.")
    state = NamedChoiceField(ApiToken.State.values, enum_name="ApiTokenState")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="To the minute.")
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: never expires.")
    revoked_at = serializers.DateTimeField(allow_null=True)


class TokenCreatedSerializer(TokenSerializer):
    class Meta:
        ref_name = "ApiTokenCreated"

    key = serializers.CharField(help_text="The plaintext key: shown in this answer only.")


class TokenPageSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "ApiTokenPage"

    count = serializers.IntegerField(help_text="Tokens the caller may see, all pages.")
    results = TokenSerializer(many=True)


def token_fields(token: ApiToken, *, now: datetime) -> dict[str, Any]:
    """What ``TokenSerializer`` renders; the state is judged at ``now``."""
    return {
        "id": token.pk,
        "prefix": token.prefix,
        "name": token.name,
        "user": token.user.get_username(),
        "state": token.state(now),
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


def _visible_token(request: Request, token_id: int) -> ApiToken:
    """404 for a token the caller may not see: another account's keys are not confirmed."""
    return get_object_or_404(api_tokens_visible(request.user), pk=token_id)


class TokenListCreateApi(APIView):
    permission_classes = (allowed(Action.TOKEN_MANAGE),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ApiTokenCreateInput"

        name = StrictCharField(
            max_length=NAME_MAX_LENGTH, required=False, default="", allow_blank=True
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text="Omit for no expiry."
        )

    class FilterSerializer(StrictSerializer):
        class Meta:
            ref_name = "ApiTokenFilter"

        limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
        offset = DbIntegerField(min_value=0, default=0)

    @extend_schema(
        operation_id="tokens_list",
        parameters=[FilterSerializer],
        responses={200: TokenPageSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params.dict())
        tokens = api_tokens_visible(request.user)
        page = tokens[filters["offset"] : filters["offset"] + filters["limit"]]
        now = timezone.now()
        body = {"count": tokens.count(), "results": [token_fields(t, now=now) for t in page]}
        return Response(TokenPageSerializer(body).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: TokenCreatedSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            # A leaked key must not be able to mint its own replacements: revoking it has
            # to be enough. People create tokens signed in; operators with lethe_token.
            raise ApplicationError(
                code="token_cannot_create_tokens",
                status=status.HTTP_403_FORBIDDEN,
                message="A token cannot create tokens: sign in to create one, or run "
                "`manage.py lethe_token create`.",
            )
        data = validated(self.InputSerializer, request.data)
        user = cast(User, request.user)  # allowed() refused anonymous callers
        token, key = api_token_issue(
            user=user, actor=user, name=data["name"], expires_at=data["expires_at"]
        )
        body = {**token_fields(token, now=timezone.now()), "key": key}
        return Response(TokenCreatedSerializer(body).data, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    permission_classes = (allowed(Action.TOKEN_MANAGE),)

    @extend_schema(request=None, responses={200: TokenSerializer, **TOKEN_CHANGE_ERRORS})
    def post(self, request: Request, token_id: int) -> Response:
        token = api_token_revoke(actor=request.user, token=_visible_token(request, token_id))
        return Response(TokenSerializer(token_fields(token, now=timezone.now())).data)


class TokenExpireApi(APIView):
    permission_classes = (allowed(Action.TOKEN_MANAGE),)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ApiTokenExpireInput"

        expires_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            default=None,
            help_text="When it stops working; omit to expire it now. Never later than before.",
        )

    @extend_schema(request=InputSerializer, responses={200: TokenSerializer, **TOKEN_CHANGE_ERRORS})
    def post(self, request: Request, token_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        token = api_token_expire(
            actor=request.user,
            token=_visible_token(request, token_id),
            expires_at=data["expires_at"],
        )
        return Response(TokenSerializer(token_fields(token, now=timezone.now())).data)
