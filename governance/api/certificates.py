"""Deletion certificates: a request's signed certificate, the public keys, verification.

The certificate is served exactly as stored: its signature covers the body's canonical
bytes, so the API never re-renders it (docs/certificates.md). The public keys are public:
the current one, and every key that ever signed here, so certificates issued before a key
rotation still verify.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.common import SIGNED_IN, ViewFormatNegotiation, error_responses
from governance.api.erasure import visible_request
from governance.errors import ApplicationError
from governance.permissions import Action, allowed


class ManifestClaimSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateManifest"

    version = serializers.IntegerField()
    generation = serializers.IntegerField()
    digest = serializers.CharField()


class StageClaimSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateStage"

    id = serializers.IntegerField()
    generation = serializers.IntegerField()
    shard = serializers.IntegerField()
    prefix = serializers.CharField()
    sequence = serializers.ListField(
        child=serializers.IntegerField(), help_text="Sequences sharing this prefix stage."
    )
    position = serializers.IntegerField()
    state_before = serializers.CharField()
    tensor_digest = serializers.CharField(help_text="Digest of the destroyed tensors.")
    destroyed_at = serializers.CharField(help_text="ISO 8601; empty if not destroyed.")


class ModelClaimSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateModel"

    model_id = serializers.IntegerField()
    name = serializers.CharField()
    stages_deactivated = StageClaimSerializer(many=True)
    manifest_before = ManifestClaimSerializer(allow_null=True)
    manifest_after = ManifestClaimSerializer(allow_null=True)
    serving_depth_after = serializers.DictField(
        child=serializers.IntegerField(), help_text="Depth by shard index."
    )
    i2_check = serializers.ChoiceField(
        choices=["passed", "failed"], help_text="No serving stage reads an erased record."
    )


class ChainHeadSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateChainHead"

    seq = serializers.IntegerField()
    hash = serializers.CharField()


class CertificateBodySerializer(serializers.Serializer[Any]):
    """The signed claims (DESIGN §6); times are ISO 8601 strings, "" for none."""

    class Meta:
        ref_name = "CertificateBody"

    type = serializers.CharField(help_text="lethe.erasure-certificate/v1")
    certificate_id = serializers.CharField()
    request_id = serializers.IntegerField()
    subject_ref = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["erased", "no_records_found"])
    records_found = serializers.IntegerField()
    records_erased = serializers.ListField(
        child=serializers.CharField(), help_text="External ids of the erased records."
    )
    models = ModelClaimSerializer(many=True)
    received_at = serializers.CharField()
    due_at = serializers.CharField()
    approved_at = serializers.CharField()
    approved_by = serializers.CharField(help_text='A username, or "policy".')
    executed_at = serializers.CharField()
    issued_at = serializers.CharField()
    audit_chain_head = ChainHeadSerializer(allow_null=True)
    issuer = serializers.CharField()


class SignatureSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateSignature"

    algorithm = serializers.CharField()
    key_id = serializers.CharField()
    value = serializers.CharField(help_text="Base64 signature of the body's canonical bytes.")


class CertificateEnvelopeSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateEnvelope"

    certificate = CertificateBodySerializer()
    signature = SignatureSerializer()


class CertificateApi(APIView):
    """The signed certificate as issued; ``?format=pdf`` renders it for people."""

    permission_classes = (allowed(Action.ERASURE_READ),)
    content_negotiation_class = ViewFormatNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "pdf"])],
        responses={
            (200, "application/json"): CertificateEnvelopeSerializer,
            (200, "application/pdf"): OpenApiTypes.BINARY,
            **error_responses(400, 404, *SIGNED_IN),
        },
    )
    def get(self, request: Request, request_id: int) -> Response | HttpResponse:
        req = visible_request(request, request_id)
        certificate = getattr(req, "certificate", None)
        if certificate is None:
            raise ApplicationError(
                code="not_found",
                status=404,
                message=f"certificate: request {req.pk} is {req.status}; "
                "a certificate is issued when it completes",
            )
        fmt = request.query_params.get("format", "json")
        if fmt == "pdf":
            return _pdf(certificate.envelope, name=f"erasure-certificate-{req.pk}.pdf")
        if fmt != "json":
            raise ApplicationError(
                code="invalid",
                message="format: must be json or pdf",
                details={"format": ["json or pdf"]},
            )
        return Response(certificate.envelope)


def _pdf(envelope: dict[str, Any], *, name: str) -> HttpResponse:
    from governance.certificates.pdf import certificate_pdf

    response = HttpResponse(certificate_pdf(envelope), "application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class PublicKeyApi(APIView):
    """The Ed25519 public key that verifies certificates (public by design)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "PublicKey"

        key_id = serializers.CharField(help_text="Names the key in a certificate's signature.")
        algorithm = serializers.CharField()
        public_key_pem = serializers.CharField(help_text="SubjectPublicKeyInfo, PEM.")
        public_key_raw = serializers.CharField(help_text="The 32 raw key bytes, base64.")

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        from governance.certificates.signing import public_key_info

        return Response(self.OutputSerializer(public_key_info()).data)


class PublicKeyListApi(APIView):
    """Every Ed25519 public key that ever signed here, oldest first (public by design).

    A certificate names its key in ``signature.key_id``; after a rotation the old keys stay
    listed, so certificates they signed still verify. ``current`` marks the key that signs
    now (listed even before its first signature).
    """

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class OutputSerializer(PublicKeyApi.OutputSerializer):
        class Meta:
            ref_name = "PublicKeyListed"

        first_used_at = serializers.DateTimeField(
            allow_null=True, help_text="When it first signed; null if it has not yet."
        )
        current = serializers.BooleanField(help_text="The key this server signs with now.")

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        from governance.certificates.keys import public_keys

        return Response(self.OutputSerializer(public_keys(), many=True).data)


class ClaimCheckSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateClaimCheck"

    claim = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class SignatureCheckSerializer(serializers.Serializer[Any]):
    class Meta:
        ref_name = "CertificateSignatureCheck"

    ok = serializers.BooleanField()
    key_id = serializers.CharField()
    reason = serializers.CharField(allow_null=True, help_text="What is wrong; null when ok.")


class CertificateVerifyApi(APIView):
    """Check a certificate someone holds: its signature, and its claims against lineage.

    The signature is checked with the key it names: the current one or one that signed
    here before a rotation; an unknown key id fails with that reason.
    """

    permission_classes = (allowed(Action.ERASURE_READ),)

    class OutputSerializer(serializers.Serializer[Any]):
        class Meta:
            ref_name = "CertificateVerifyOutput"

        ok = serializers.BooleanField(help_text="The signature and every claim hold.")
        signature = SignatureCheckSerializer()
        claims = ClaimCheckSerializer(
            many=True, help_text="Checked against the database; empty if the signature fails."
        )

    @extend_schema(
        request=CertificateEnvelopeSerializer,
        responses={200: OutputSerializer, **error_responses(400, *SIGNED_IN)},
    )
    def post(self, request: Request) -> Response:
        from governance.certificates.claims import certificate_claims_check
        from governance.certificates.keys import certificate_verify_stored

        signature = certificate_verify_stored(request.data)
        claims = certificate_claims_check(request.data) if signature.ok else []
        body = {
            "ok": signature.ok and all(c["ok"] for c in claims),
            "signature": {
                "ok": signature.ok,
                "key_id": signature.key_id,
                "reason": signature.reason or None,
            },
            "claims": claims,
        }
        return Response(self.OutputSerializer(body).data)
