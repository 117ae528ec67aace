"""The OpenAPI document types every response: a client generated from it knows each field."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

OK = ("200", "201", "202")
ERROR_FIELDS = {"code", "message", "details"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def resolve(document, schema):
    """``schema`` with a ``$ref`` replaced by the component it names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    return document["components"]["schemas"][name]


def is_described(document, schema):
    """An object with named properties, or an array of them: never a bare ``object``."""
    resolved = resolve(document, schema)
    if resolved.get("type") == "array":
        return is_described(document, resolved.get("items", {}))
    return bool(resolved.get("properties"))


def json_responses(document, codes):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code not in codes:
                    continue
                for media_type, content in response.get("content", {}).items():
                    if media_type == "application/json" or media_type.endswith("+json"):
                        yield f"{method.upper()} {path} {code} {media_type}", content


def test_every_success_response_is_described(schema):
    bare = [
        where
        for where, content in json_responses(schema, OK)
        if not is_described(schema, content.get("schema", {}))
    ]

    assert not bare, "responses without properties:\n" + "\n".join(bare)


def test_the_check_rejects_a_bare_object_and_accepts_refs_and_arrays():
    document = {
        "components": {
            "schemas": {
                "Bare": {"type": "object"},
                "Typed": {"type": "object", "properties": {"id": {"type": "integer"}}},
            }
        }
    }

    assert not is_described(document, {"type": "object"})
    assert not is_described(document, {"$ref": "#/components/schemas/Bare"})
    assert not is_described(document, {"type": "array", "items": {"type": "object"}})
    assert is_described(document, {"$ref": "#/components/schemas/Typed"})
    assert is_described(
        document, {"type": "array", "items": {"$ref": "#/components/schemas/Typed"}}
    )


def test_the_document_covers_every_endpoint(schema):
    operations = [where for where, _ in json_responses(schema, OK)]

    # 43 operations answer JSON on success (approve and retry answer 200 or 202; tokens/ and
    # datasets/{id}/grants/ add six, certificates/public-keys/ one; webhooks/ eight: list,
    # create, read, patch, rotate-secret, test, deliveries, redeliver, and confirmations two;
    # models/{id}/generate/ one; a webhook's DELETE answers 204 without a body); the PDF and
    # CSV renderings come on top.
    assert len(operations) == 43, operations


def test_binary_renderings_are_documented_by_media_type(schema):
    certificate = schema["paths"]["/api/v1/erasure-requests/{request_id}/certificate/"]["get"]
    report = schema["paths"]["/api/v1/reports/erasures/"]["get"]

    assert set(certificate["responses"]["200"]["content"]) == {
        "application/json",
        "application/pdf",
    }
    assert set(report["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/pdf",
    }


def test_errors_are_documented_in_the_one_error_shape(schema):
    error = resolve(schema, {"$ref": "#/components/schemas/Error"})
    detail = resolve(schema, error["properties"]["error"])
    create = schema["paths"]["/api/v1/erasure-requests/"]["post"]["responses"]

    assert set(detail["properties"]) == ERROR_FIELDS
    for code in ("400", "401", "403"):
        ref = create[code]["content"]["application/json"]["schema"]
        assert ref == {"$ref": "#/components/schemas/Error"}


# --- the document says what validation does (governance.api.common.LetheAutoSchema) ------

PUBLIC = {
    "/api/v1/health/",
    "/api/v1/certificates/public-key/",
    "/api/v1/certificates/public-keys/",
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_operation_documents_the_errors_of_its_kind(schema):
    missing = []
    for path, method, operation in operations(schema):
        expected = {"406", "429"}
        if path not in PUBLIC:
            expected |= {"401", "403"}
        if "requestBody" in operation:
            expected |= {"400", "413", "415"}
        for code in sorted(expected):
            response = operation["responses"].get(code)
            if response is None or response["content"]["application/json"]["schema"] != ERROR_REF:
                missing.append(f"{method.upper()} {path} {code}")

    assert not missing, "undocumented errors:\n" + "\n".join(missing)


def test_a_reused_idempotency_key_is_documented_as_422(schema):
    create = schema["paths"]["/api/v1/erasure-requests/"]["post"]["responses"]

    assert create["422"]["content"]["application/json"]["schema"] == ERROR_REF


def request_objects(document):
    for path, method, operation in operations(document):
        for content in operation.get("requestBody", {}).get("content", {}).values():
            body = resolve(document, content["schema"])
            if body.get("type") == "object" and body.get("properties"):
                yield f"{method.upper()} {path}", content["schema"].get("$ref", ""), body


def test_strict_bodies_refuse_unknown_fields_in_the_document(schema):
    # The certificate verifier takes any envelope: its signature decides, not a serializer.
    open_bodies = {"#/components/schemas/CertificateEnvelope"}
    loose = [
        where
        for where, ref, body in request_objects(schema)
        if ref not in open_bodies and body.get("additionalProperties") is not False
    ]

    assert not loose, "bodies that refuse unknown fields but do not say so:\n" + "\n".join(loose)


@pytest.mark.parametrize(
    ("component", "field", "min_length"),
    [
        ("ErasureRequestInput", "subject_id", 1),
        ("ErasureReasonInput", "reason", 1),
        ("DatasetCreateInput", "name", 1),
        ("ModelCreateInput", "name", 1),
        ("ErasureNoteInput", "note", None),  # a note may be blank
        ("ErasureRequestInput", "reason", None),
    ],
)
def test_request_strings_that_may_not_be_blank_have_min_length_one(
    schema, component, field, min_length
):
    properties = schema["components"]["schemas"][component]["properties"]

    assert properties[field].get("minLength") == min_length


def test_nested_strict_objects_are_documented_with_their_fields(schema):
    lora = schema["components"]["schemas"]["ModelCreateInput"]["properties"]["lora"]
    lora = resolve(schema, lora.get("allOf", [lora])[0])

    assert set(lora["properties"]) == {"rank", "alpha", "targets"}
    assert lora["additionalProperties"] is False
