"""Datasets of each task and their records through the real URLconf: generation rows (prompt
and response, or messages) in every body format, image rows in base64 and as multipart
files, each bad input rejected per row naming the field with the valid rows kept, and image
bytes in the artifact store, asked of the store itself."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from governance.artifacts import artifact_objects
from governance.images import image_bytes
from governance.models import Dataset, Record, Shard, Slice, SliceAssignment
from governance.services import datasets as dataset_services
from governance.services.record_rows import ValidRow, validate_rows
from tests.factories import UnlearningModelFactory
from tests.governance import web_helpers
from tests.governance.api_helpers import API, error_of

artifacts = web_helpers.artifacts
LABELS = ["cat", "dog"]


def png(colour=(200, 30, 30), size=(8, 6)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def b64(data):
    return base64.b64encode(data).decode()


def make_dataset(client, task, labels=None, name="ds"):
    body = {"name": name, "task": task, **({"labels": labels} if labels is not None else {})}
    response = client.post(f"{API}/datasets/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["task"] == task
    return response.json()["id"]


def post_rows(client, dataset_id, body, **kwargs):
    kwargs.setdefault("format", "json")
    response = client.post(f"{API}/datasets/{dataset_id}/records/", body, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def image_objects():
    """Every image object the store holds (asked of the store, not of the rows)."""
    return list(artifact_objects().list("images/"))


# --- datasets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "d", "task": "speech"}, "task"),
        ({"name": "d", "task": 3}, "task"),
        ({"name": "d", "task": "generation", "labels": ["a", "b"]}, "labels"),
        ({"name": "d", "task": "image_classification"}, "labels"),
        ({"name": "d", "task": "image_classification", "labels": ["only"]}, "labels"),
        ({"name": "d", "task": "classification", "labels": []}, "labels"),
    ],
)
def test_dataset_task_and_labels_are_checked_naming_the_field(integration, body, field):
    response = integration.client.post(f"{API}/datasets/", body, format="json")

    error = error_of(response, 400, "invalid", names=field)
    assert field in error["details"]
    assert not Dataset.objects.exists()


def test_each_task_creates_its_dataset_and_reads_back(integration):
    ids = {
        "classification": make_dataset(integration.client, "classification", LABELS, "c"),
        "generation": make_dataset(integration.client, "generation", None, "g"),
        "image_classification": make_dataset(integration.client, "image_classification", LABELS),
    }
    plain = integration.client.post(
        f"{API}/datasets/", {"name": "plain", "labels": LABELS}, format="json"
    ).json()

    assert plain["task"] == "classification"
    for task, dataset_id in ids.items():
        body = integration.client.get(f"{API}/datasets/{dataset_id}/").json()
        assert body["task"] == task
        assert body["labels"] == ([] if task == "generation" else LABELS)


# --- generation rows ----------------------------------------------------------------------

PROMPT_ROWS = [
    {"external_id": "g1", "subject_id": "s1", "prompt": "Say hi", "response": "Hi!"},
    {"external_id": "g2", "subject_id": "s2", "prompt": 'Quote "x",\nplease', "response": "x"},
]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
]
MESSAGES_ROW = {"external_id": "m1", "subject_id": "s3", "messages": CONVERSATION}


def as_csv(rows, fields=("external_id", "subject_id", "prompt", "response")):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def as_jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def stored(dataset_id):
    return {
        r.external_id: (r.subject.external_ref, r.text, r.response, r.messages, r.label)
        for r in Record.objects.filter(dataset_id=dataset_id).select_related("subject")
    }


EXPECTED_PROMPTS = {
    "g1": ("s1", "Say hi", "Hi!", None, ""),
    "g2": ("s2", 'Quote "x",\nplease', "x", None, ""),
}
EXPECTED_MESSAGES = {"m1": ("s3", "", "Paris.", CONVERSATION[:2], "")}


@pytest.mark.parametrize(
    ("how", "rows", "expected"),
    [
        ("json", PROMPT_ROWS, EXPECTED_PROMPTS),
        ("jsonl", PROMPT_ROWS, EXPECTED_PROMPTS),
        ("csv", PROMPT_ROWS, EXPECTED_PROMPTS),
        ("upload-csv", PROMPT_ROWS, EXPECTED_PROMPTS),
        ("json", [MESSAGES_ROW], EXPECTED_MESSAGES),
        ("jsonl", [MESSAGES_ROW], EXPECTED_MESSAGES),
        ("json", [*PROMPT_ROWS, MESSAGES_ROW], {**EXPECTED_PROMPTS, **EXPECTED_MESSAGES}),
    ],
)
def test_generation_rows_in_every_format_store_prompt_response_and_turns(
    integration, how, rows, expected
):
    dataset_id = make_dataset(integration.client, "generation")
    kwargs = {
        "json": lambda: {"data": rows, "format": "json"},
        "jsonl": lambda: {"data": as_jsonl(rows), "content_type": "application/x-ndjson"},
        "csv": lambda: {"data": as_csv(rows), "content_type": "text/csv"},
        "upload-csv": lambda: {
            "data": {"file": SimpleUploadedFile("rows.csv", as_csv(rows), "text/csv")},
            "format": "multipart",
        },
    }[how]()

    response = integration.client.post(f"{API}/datasets/{dataset_id}/records/", **kwargs)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "created": len(rows),
        "updated": 0,
        "unchanged": 0,
        "rejected": [],
    }
    assert stored(dataset_id) == expected
    again = post_rows(integration.client, dataset_id, rows)
    assert (again["created"], again["unchanged"]) == (0, len(rows))


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def chat(*pairs):
    """A messages row with these (role, content) turns."""
    return {"external_id": "b", "subject_id": "s", "messages": turns(*pairs)}


GOOD = PROMPT_ROWS[0]


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ({"external_id": "b", "subject_id": "s", "prompt": "p"}, "response", "response: missing"),
        ({**GOOD, "external_id": "b", "response": ""}, "response", "response: must not be empty"),
        ({**GOOD, "external_id": "b", "response": " "}, "response", "response: must not be empty"),
        ({**GOOD, "external_id": "b", "response": 4}, "response", "response: must be a string"),
        ({**GOOD, "external_id": "b", "response": "a\x00"}, "response", "response: contains a NUL"),
        ({**GOOD, "external_id": "b", "response": "\ud800"}, "response", "response: contains an"),
        ({**GOOD, "external_id": "b", "response": "r" * 20_001}, "response", "response: longer"),
        ({**GOOD, "external_id": "b", "prompt": ""}, "prompt", "prompt: must not be empty"),
        ({"external_id": "b", "subject_id": "s", "response": "r"}, "prompt", "prompt: missing"),
        ({**GOOD, "external_id": "b", "text": "t"}, "text", "'text': unexpected field"),
        ({**GOOD, "external_id": "b", "messages": CONVERSATION}, "prompt", "prompt: send either"),
        (
            chat(("user", "hi")),
            "messages",
            "messages: the last turn must be the assistant's",
        ),
        (
            chat(("bot", "x"), ("assistant", "y")),
            "messages",
            "messages: turn 1: role 'bot' is not one of system, user, assistant",
        ),
        (
            chat(("user", "x"), ("assistant", "")),
            "messages",
            "messages: turn 2: content: must not be empty",
        ),
        (
            chat(("user", "\x00"), ("assistant", "y")),
            "messages",
            "messages: turn 1: content: contains a NUL",
        ),
        (
            chat(("assistant", "only")),
            "messages",
            "messages: needs at least one turn before",
        ),
        (chat(), "messages", "messages: must not be empty"),
        ({**chat(), "messages": "hi"}, "messages", "messages: must be an array"),
        (
            {"external_id": "b", "subject_id": "s", "messages": [{"role": "user"}, "x"]},
            "messages",
            "messages: turn 1: must be an object with exactly role and content",
        ),
        (
            {"external_id": "b", "subject_id": "s", "messages": CONVERSATION, "response": "r"},
            "response",
            "response: send either",
        ),
    ],
)  # fmt: skip
def test_each_bad_generation_row_is_rejected_naming_the_field_and_the_good_row_kept(
    integration, bad, field, message
):
    dataset_id = make_dataset(integration.client, "generation")
    data = json.dumps([GOOD, bad])  # ASCII escapes: a lone surrogate travels as \ud800

    body = post_rows(
        integration.client, dataset_id, data, format=None, content_type="application/json"
    )

    assert body["created"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, field)]
    assert body["rejected"][0]["error"].startswith(message), body["rejected"][0]["error"]
    assert list(Record.objects.values_list("external_id", flat=True)) == ["g1"]


def test_generation_csv_needs_prompt_and_response_columns(integration):
    dataset_id = make_dataset(integration.client, "generation")
    data = as_csv([{"external_id": "a", "subject_id": "s", "text": "t", "label": "x"}],
                  fields=("external_id", "subject_id", "text", "label"))  # fmt: skip

    response = integration.client.post(
        f"{API}/datasets/{dataset_id}/records/", data=data, content_type="text/csv"
    )

    error = error_of(response, 400, "parse_error")
    assert "expected external_id, subject_id, prompt, response" in error["message"]
    assert not Record.objects.exists()


def test_a_trained_generation_record_cannot_change_its_response_or_turns(integration):
    dataset_id = make_dataset(integration.client, "generation")
    post_rows(integration.client, dataset_id, [GOOD, MESSAGES_ROW])
    place_in_lineage(dataset_id)
    changed_turns = [*CONVERSATION[:2], {"role": "assistant", "content": "Lyon."}]
    same = post_rows(integration.client, dataset_id, [GOOD, MESSAGES_ROW])

    body = post_rows(
        integration.client,
        dataset_id,
        [{**GOOD, "response": "Hello."}, {**MESSAGES_ROW, "messages": changed_turns}],
    )

    assert same["unchanged"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (0, "external_id"),
        (1, "external_id"),
    ]
    assert "erasure" in body["rejected"][0]["error"]
    assert stored(dataset_id)["g1"][2] == "Hi!"
    assert stored(dataset_id)["m1"][2] == "Paris."


def place_in_lineage(dataset_id):
    """Assign every record of the dataset to a slice of a model (lineage rows only)."""
    model = UnlearningModelFactory(dataset_id=dataset_id)
    shard = Shard.objects.create(model=model, generation=1, index=0)
    piece = Slice.objects.create(shard=shard, index=0)
    for record in Record.objects.filter(dataset_id=dataset_id):
        SliceAssignment.objects.create(record=record, slice=piece, model=model, generation=1)


# --- image rows ---------------------------------------------------------------------------


def image_row(external_id, data, subject="s1", label="cat"):
    return {"external_id": external_id, "subject_id": subject, "label": label, "image": b64(data)}


def test_base64_images_are_checked_and_stored_under_their_own_keys(integration, artifacts):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)
    red, blue = png(), png((0, 0, 255))

    body = post_rows(
        integration.client,
        dataset_id,
        [image_row("i1", red), image_row("i2", blue, label="dog"), image_row("i3", red)],
    )

    assert (body["created"], body["rejected"]) == (3, [])
    records = {r.external_id: r for r in Record.objects.all()}
    for external_id, data in (("i1", red), ("i2", blue), ("i3", red)):
        record = records[external_id]
        assert image_bytes(record.image_key) == data
        assert record.image_digest == "sha256:" + hashlib.sha256(data).hexdigest()
        assert record.text == ""
    # Equal bytes, two records: two objects, never one shared by content.
    assert records["i1"].image_key != records["i3"].image_key
    assert sorted(image_objects()) == sorted(r.image_key for r in records.values())
    assert (records["i1"].label, records["i2"].label) == ("cat", "dog")
    again = post_rows(integration.client, dataset_id, [image_row("i1", red)])
    assert again["unchanged"] == 1
    assert len(image_objects()) == 3  # an unchanged row writes nothing


def test_images_upload_as_multipart_rows_and_files(integration, artifacts):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)
    red, blue = png(), png((0, 0, 255))
    rows = [
        {"external_id": "i1", "subject_id": "s1", "label": "cat", "image": "red.png"},
        {"external_id": "i2", "subject_id": "s2", "label": "dog", "image": "blue.png"},
        {"external_id": "i3", "subject_id": "s2", "label": "dog", "image": "missing.png"},
    ]
    parts = {
        "rows": json.dumps(rows),
        "images": [
            SimpleUploadedFile("red.png", red, "image/png"),
            SimpleUploadedFile("blue.png", blue, "image/png"),
        ],
    }

    body = post_rows(integration.client, dataset_id, parts, format="multipart")

    assert body["created"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(2, "image")]
    assert "missing.png" in body["rejected"][0]["error"]
    stored_images = {r.external_id: image_bytes(r.image_key) for r in Record.objects.all()}
    assert stored_images == {"i1": red, "i2": blue}
    assert len(image_objects()) == 2


def test_multipart_rows_may_come_as_a_file_part(integration, artifacts):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)
    rows = [{"external_id": "i1", "subject_id": "s1", "label": "cat", "image": "a.png"}]
    parts = {
        "rows": SimpleUploadedFile("rows.jsonl", as_jsonl(rows), "application/octet-stream"),
        "images": [SimpleUploadedFile("a.png", png(), "image/png")],
    }

    body = post_rows(integration.client, dataset_id, parts, format="multipart")

    assert (body["created"], body["rejected"]) == (1, [])


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"images": [SimpleUploadedFile("a.png", b"x")]}, "rows"),  # images with no rows
        ({"rows": "[]", "images": [SimpleUploadedFile("stray.png", b"x")]}, "images"),
        ({"rows": "[]", "file": SimpleUploadedFile("r.json", b"[]")}, "rows"),
        (
            {
                "rows": json.dumps([{"image": "a.png"}]),
                "images": [SimpleUploadedFile("a.png", b"x"), SimpleUploadedFile("a.png", b"y")],
            },
            "images",
        ),
    ],
)
def test_a_malformed_image_upload_is_400_naming_the_part(integration, artifacts, parts, field):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)

    response = integration.client.post(
        f"{API}/datasets/{dataset_id}/records/", parts, format="multipart"
    )

    error = error_of(response, 400, "invalid")
    assert field in error["details"], error
    assert not Record.objects.exists()
    assert image_objects() == []


def truncated_png():
    return png(size=(64, 64))[:-30]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("not base64!", "image: not valid base64"),
        ("", "image: must not be empty"),
        (7, "image: must be a string"),
        (b64(b"GIF89a" + b"\x00" * 20), "image: GIF is not accepted"),
        (b64(b"hello, this is text"), "image: not a PNG or JPEG"),
        (b64(truncated_png()), "image:"),
        (b64(png(size=(40, 30))), "image: 40×30 = 1200 pixels exceeds"),
        (b64(png(size=(8, 8)) + b"\x00" * 3000), "image:"),  # over the byte limit
        (b64(b"\x00" * 4000), "image: more than 2048 bytes"),  # refused before decoding
    ],
)
@override_settings(LETHE_IMAGE_MAX_BYTES=2048, LETHE_IMAGE_MAX_PIXELS=1000)
def test_each_bad_image_is_rejected_naming_image_and_the_good_row_kept(
    integration, artifacts, image, message
):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)
    good = image_row("ok", png())

    body = post_rows(
        integration.client, dataset_id, [good, {**good, "external_id": "bad", "image": image}]
    )

    assert body["created"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "image")]
    assert body["rejected"][0]["error"].startswith(message), body["rejected"][0]["error"]
    (record,) = Record.objects.all()
    assert image_objects() == [record.image_key]


def test_an_image_row_needs_a_dataset_label(integration, artifacts):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)

    body = post_rows(integration.client, dataset_id, [image_row("a", png(), label="horse")])

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "label")]
    assert image_objects() == []


def test_a_failed_database_write_deletes_the_images_it_stored(integration, artifacts, monkeypatch):
    dataset = Dataset.objects.create(name="d", labels=LABELS, task="image_classification")
    valid, errors = validate_rows(
        [image_row("a", png()), image_row("b", png((1, 2, 3)))],
        labels=LABELS,
        max_rows=10,
        task="image_classification",
    )
    assert errors == []
    assert len(valid) == 2
    stored_keys = []
    put = dataset_services.image_put

    def put_and_note(**kwargs):
        stored_keys.append(put(**kwargs))
        return stored_keys[-1]

    def fail(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(dataset_services, "image_put", put_and_note)
    monkeypatch.setattr(dataset_services, "_write", fail)  # the one place rows are written

    with pytest.raises(RuntimeError, match="database gone"):
        dataset_services.records_upsert(actor="test", dataset=dataset, rows=valid)

    assert len(stored_keys) == 2  # they were written, then taken back
    assert image_objects() == []
    assert not any(artifact_objects().exists(key) for key in stored_keys)


def test_a_trained_image_record_cannot_change_its_image(integration, artifacts):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)
    post_rows(integration.client, dataset_id, [image_row("a", png())])
    place_in_lineage(dataset_id)

    body = post_rows(integration.client, dataset_id, [image_row("a", png((9, 9, 9)))])

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "external_id")]
    (record,) = Record.objects.all()
    assert image_bytes(record.image_key) == png()
    assert image_objects() == [record.image_key]


def test_an_untrained_image_update_replaces_the_bytes(
    integration, artifacts, django_capture_on_commit_callbacks
):
    dataset_id = make_dataset(integration.client, "image_classification", LABELS)
    post_rows(integration.client, dataset_id, [image_row("a", png())])
    old_key = Record.objects.get().image_key

    with django_capture_on_commit_callbacks(execute=True):
        body = post_rows(integration.client, dataset_id, [image_row("a", png((9, 9, 9)))])

    record = Record.objects.get()
    assert body["updated"] == 1
    assert record.image_key != old_key
    assert image_bytes(record.image_key) == png((9, 9, 9))
    assert image_objects() == [record.image_key]  # the replaced object is gone


def test_validrow_defaults_keep_classification_rows_as_before():
    valid, _ = validate_rows(
        [{"external_id": "r", "subject_id": "s", "text": "t", "label": "cat"}],
        labels=LABELS,
        max_rows=1,
    )

    assert valid == [ValidRow(0, "r", "s", "t", "cat")]
    assert (valid[0].response, valid[0].messages, valid[0].image) == ("", None, None)


# --- junk never escapes as anything but a RowError, for the new tasks ----------------------

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "bot"]) | JUNK,
                              "content": st.sampled_from(["hi", "", "\x00"]) | JUNK})  # fmt: skip
GENERATION_ROWS = st.fixed_dictionaries(
    {"external_id": st.sampled_from(["a", "b", ""]) | JUNK, "subject_id": st.just("s") | JUNK},
    optional={
        "prompt": st.sampled_from(["p", " "]) | JUNK,
        "response": st.sampled_from(["r", ""]) | JUNK,
        "messages": st.lists(TURN, max_size=4) | JUNK,
        "text": JUNK,
    },
)
IMAGE_ROWS = st.fixed_dictionaries(
    {
        "external_id": st.sampled_from(["a", "b"]) | JUNK,
        "subject_id": st.just("s") | JUNK,
        "label": st.sampled_from([*LABELS, "x"]) | JUNK,
        "image": st.sampled_from([b64(png()), "", "!!"]) | st.binary(max_size=40).map(b64) | JUNK,
    }
)


@hypothesis_settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    task_rows=st.sampled_from(["generation", "image_classification"]).flatmap(
        lambda task: st.tuples(
            st.just(task),
            st.lists(GENERATION_ROWS if task == "generation" else IMAGE_ROWS | JUNK, max_size=6),
        )
    )
)
def test_junk_rows_of_the_new_tasks_only_ever_produce_row_errors(task_rows):
    task, rows = task_rows
    labels = [] if task == "generation" else LABELS

    valid, errors = validate_rows(rows, labels=labels, max_rows=100, task=task)

    assert sorted([v.index for v in valid] + [e.index for e in errors]) == list(range(len(rows)))
    for error in errors:
        assert isinstance(error.error, str)
        assert error.error
        assert error.field is None or isinstance(error.field, str)
    for v in valid:
        if task == "generation":
            assert v.response.strip()
            assert v.text.strip() or v.messages
        else:
            assert v.label in LABELS
            assert v.image is not None
            assert v.image_digest == "sha256:" + hashlib.sha256(v.image).hexdigest()
