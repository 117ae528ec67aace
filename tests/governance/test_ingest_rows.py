"""Per-row validation of bulk records: every rule, and junk that never escapes as anything
but a RowError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.errors import ApplicationError
from governance.services.record_rows import FIELDS, RowError, ValidRow, validate_rows

LABELS = ("billing", "bug", "praise")


def row(**overrides):
    return {"external_id": "r1", "subject_id": "s1", "text": "hello", "label": "bug", **overrides}


# --- validate_rows ----------------------------------------------------------------------------


def test_valid_rows_are_stripped_and_keep_their_index():
    rows = [row(external_id="  r1 ", subject_id="\ts1 ", text="  spaced  "), "junk"]

    valid, errors = validate_rows(rows, labels=LABELS, max_rows=10)

    assert valid == [ValidRow(0, "r1", "s1", "  spaced  ", "bug")]
    assert errors == [RowError(1, errors[0].error, None)]
    assert "must be an object" in errors[0].error
    assert "string" in errors[0].error


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ({k: v for k, v in row().items() if k != "text"}, "text", "text: missing field"),
        (row(extra=1), "extra", "'extra': unexpected field"),
        (row(external_id=7), "external_id", "external_id: must be a string, got number"),
        (row(subject_id=None), "subject_id", "subject_id: must be a string, got null"),
        (row(text=["a"]), "text", "text: must be a string, got array"),
        (row(label=True), "label", "label: must be a string, got boolean"),
        (row(external_id="   "), "external_id", "external_id: must not be empty"),
        (row(subject_id="s" * 201), "subject_id", "subject_id: longer than 200 characters"),
        (row(external_id="a\nb"), "external_id", "external_id: contains control character U+000A"),
        (row(subject_id="a\x85b"), "subject_id", "subject_id: contains control character U+0085"),
        (row(text=""), "text", "text: must not be empty"),
        (row(text=" \n "), "text", "text: must not be empty"),
        (row(text="t" * 20_001), "text", "text: longer than 20000 characters"),
        (row(text="a\x00b"), "text", "text: contains a NUL character"),
        (row(text="\ud800"), "text", "text: contains an unpaired surrogate"),
        (row(label="Bug"), "label", "label: 'Bug' is not a dataset label (billing, bug, praise)"),
    ],
)
def test_each_rule_rejects_with_field_and_message(bad, field, message):
    valid, errors = validate_rows([row(external_id="ok"), bad], labels=LABELS, max_rows=10)

    assert [v.index for v in valid] == [0]
    assert len(errors) == 1
    assert (errors[0].index, errors[0].field) == (1, field)
    assert errors[0].error.startswith(message)


def test_limits_are_inclusive():
    ok = row(external_id="e" * 200, subject_id="s" * 200, text="t" * 20_000)

    valid, errors = validate_rows([ok], labels=LABELS, max_rows=1)

    assert errors == []
    assert len(valid) == 1


def test_non_string_keys_are_named_as_strings():
    _, errors = validate_rows([{**row(), 7: "x"}], labels=LABELS, max_rows=1)

    assert errors == [RowError(0, errors[0].error, "7")]


def test_many_labels_are_truncated_in_the_message():
    labels = [f"label{i}" for i in range(25)]

    _, errors = validate_rows([row(label="nope")], labels=labels, max_rows=1)

    assert errors[0].error.endswith(
        "(label0, label1, label2, label3, label4, label5, label6, "
        "label7, label8, label9 and 15 more)"
    )


def test_long_values_are_shortened_in_messages():
    _, errors = validate_rows([row(label="x" * 10_000)], labels=LABELS, max_rows=1)

    assert len(errors[0].error) < 200


def test_duplicate_external_id_names_the_first_row():
    rows = [row(external_id="a"), row(external_id="b"), row(external_id=" a ", text="other")]

    valid, errors = validate_rows(rows, labels=LABELS, max_rows=10)

    assert [v.external_id for v in valid] == ["a", "b"]
    assert errors == [RowError(2, "external_id: 'a' repeats row 0", "external_id")]


def test_a_rejected_row_still_claims_its_external_id():
    rows = [row(external_id="a", label="nope"), row(external_id="a")]

    valid, errors = validate_rows(rows, labels=LABELS, max_rows=10)

    assert valid == []
    assert [(e.index, e.field) for e in errors] == [(0, "label"), (1, "external_id")]


def test_batch_over_the_limit_raises_naming_it():
    with pytest.raises(ApplicationError, match="limit is 2") as caught:
        validate_rows([row(), row(), row()], labels=LABELS, max_rows=2)

    assert (caught.value.code, caught.value.status) == ("batch_too_large", 400)
    assert caught.value.details == {"limit": 2, "rows": 3}


def test_row_error_as_dict():
    assert RowError(3, "label: bad", "label").as_dict() == {
        "index": 3,
        "field": "label",
        "error": "label: bad",
    }


# --- junk never escapes as anything but a RowError --------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(FIELDS) | ANY_TEXT | st.integers() | st.tuples(st.integers())
NEAR_MISS = st.fixed_dictionaries(
    {
        "external_id": st.sampled_from(["a", " a", "b", ""]) | VALUES,
        "subject_id": st.sampled_from(["s", "s\x01"]) | VALUES,
        "text": st.sampled_from(["hi", " ", "x\x00"]) | VALUES,
        "label": st.sampled_from([*LABELS, "other"]) | VALUES,
    },
    optional={"extra": VALUES, 7: VALUES, ("k",): VALUES},
)
ROWS = st.lists(
    NEAR_MISS | VALUES | st.dictionaries(KEYS, VALUES, max_size=6) | st.builds(object),
    max_size=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS)
def test_junk_rows_only_ever_produce_row_errors(rows):
    valid, errors = validate_rows(rows, labels=LABELS, max_rows=100)

    assert sorted([v.index for v in valid] + [e.index for e in errors]) == list(range(len(rows)))
    for error in errors:
        assert isinstance(error.error, str)
        assert error.error
        assert error.field is None or isinstance(error.field, str)
    for v in valid:
        assert v.label in LABELS
        assert v.external_id == v.external_id.strip()
        assert 1 <= len(v.external_id) <= 200
        assert v.text.strip()
        assert "\x00" not in v.text
        v.text.encode("utf-8")  # storable
    assert len({v.external_id for v in valid}) == len(valid)
