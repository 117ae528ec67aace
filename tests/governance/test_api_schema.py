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

    # 23 operations answer JSON on success; the PDF and CSV renderings come on top.
    assert len(operations) == 23, operations


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
