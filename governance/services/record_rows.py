"""What a valid record row is: the checks every ingest path applies before a write.

The API's parsers (``governance.api.ingest``) turn a body into rows; the demo, the
benchmarks and the tests build rows themselves. All of them pass the rows through
``validate_rows``, so a rule about record fields has this one home. A bad row is reported
by index and field; the other rows are kept.

What a row holds depends on the dataset's task (docs/tasks.md):

- classification: ``external_id, subject_id, text, label``;
- generation: ``external_id, subject_id, prompt, response``, or ``external_id, subject_id,
  messages`` with ``messages`` a conversation whose last turn, the assistant's, is the
  target (kept as the response) and whose earlier turns are the prompt;
- image_classification: ``external_id, subject_id, label, image``; ``image`` is base64 in
  a JSON body, or names an uploaded file when the request carried files. The bytes are
  checked here (``unlearning.images.image_check``: PNG or JPEG, fully decoded, within
  ``LETHE_IMAGE_MAX_BYTES`` and ``LETHE_IMAGE_MAX_PIXELS``) and their digest taken.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from governance.errors import ApplicationError
from governance.subject_refs import SubjectRefError, subject_ref_clean

CLASSIFICATION, GENERATION, IMAGE_CLASSIFICATION = (
    "classification",
    "generation",
    "image_classification",
)
TASKS = (CLASSIFICATION, GENERATION, IMAGE_CLASSIFICATION)
FIELDS = ("external_id", "subject_id", "text", "label")
PROMPT_FIELDS = ("external_id", "subject_id", "prompt", "response")
MESSAGES_FIELDS = ("external_id", "subject_id", "messages")
IMAGE_FIELDS = ("external_id", "subject_id", "label", "image")
# The columns a CSV body of each task has (messages need JSON: a conversation is a list).
CSV_FIELDS = {CLASSIFICATION: FIELDS, GENERATION: PROMPT_FIELDS, IMAGE_CLASSIFICATION: IMAGE_FIELDS}
ROLES = ("system", "user", "assistant")
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 20_000
MAX_TURNS = 64
LABELS_SHOWN = 10  # a message listing 1000 labels helps nobody

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly
_JSON_TYPES = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


@dataclass(frozen=True)
class ValidRow:
    """A row that passed; the fields of other tasks keep their empty defaults."""

    index: int  # position in the request, kept so rejections and results line up
    external_id: str
    subject_id: str
    text: str
    label: str
    response: str = ""
    # The turns before the response, when the row came as ``messages``; None otherwise.
    messages: tuple[tuple[str, str], ...] | None = None
    image: bytes | None = field(default=None, repr=False)
    image_digest: str = ""
    image_format: str = ""  # "PNG" or "JPEG"

    def messages_json(self) -> list[dict[str, str]] | None:
        """The turns as ``Record.messages`` stores them."""
        if self.messages is None:
            return None
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class RowError:
    index: int
    error: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


class _Rejected(Exception):
    def __init__(self, field: str | None, error: str) -> None:
        super().__init__(error)
        self.field, self.error = field, error


def validate_rows(
    rows: Sequence[Any],
    *,
    labels: Sequence[str],
    max_rows: int,
    task: str = CLASSIFICATION,
    files: Mapping[str, bytes] | None = None,
) -> tuple[list[ValidRow], list[RowError]]:
    """Split raw rows into valid ones and errors; nothing but ``batch_too_large`` raises.

    A classification row is an object with exactly the fields external_id, subject_id,
    text, label, all strings; the other tasks' rows are in the module docstring. The first
    row that carries an external_id claims it, even if it is rejected for another reason:
    a batch with two rows for one record never silently picks one.

    Args:
        task: the dataset's task.
        files: the request's uploaded images by file name (a multipart ``rows`` upload):
            an image row's ``image`` names one of them. None: ``image`` is base64.
    """
    if len(rows) > max_rows:
        raise ApplicationError(
            code="batch_too_large",
            message=f"The batch has {len(rows)} rows; the limit is {max_rows}. Split it.",
            details={"limit": max_rows, "rows": len(rows)},
        )
    allowed = frozenset(labels)
    seen: dict[str, int] = {}
    valid: list[ValidRow] = []
    errors: list[RowError] = []
    check = _ROW_CHECKS[task]
    for index, row in enumerate(rows):
        try:
            valid.append(check(_Row(index, row, allowed, labels, seen, files)))
        except _Rejected as rejected:
            errors.append(RowError(index, rejected.error, rejected.field))
    return valid, errors


@dataclass(frozen=True)
class _Row:
    """One raw row and what checking it needs."""

    index: int
    value: Any
    allowed: frozenset[str]
    labels: Sequence[str]
    seen: dict[str, int]
    files: Mapping[str, bytes] | None


def _claimed(raw: _Row, *forms: tuple[str, ...]) -> tuple[dict[Any, Any], str]:
    """The row as an object with its external_id claimed and no field outside ``forms``."""
    row = raw.value
    if not isinstance(row, dict):
        shapes = _shapes(forms)
        raise _Rejected(None, f"row must be an object with fields {shapes}, got {_json_type(row)}")
    external_id = _identifier(row, "external_id")
    if (first := raw.seen.setdefault(external_id, raw.index)) != raw.index:
        raise _Rejected("external_id", f"external_id: {external_id!r} repeats row {first}")
    if not _known_fields(forms).issuperset(row):
        extra = next(key for key in row if key not in _known_fields(forms))
        raise _Rejected(
            str(extra), f"{_show(extra)}: unexpected field; a row has exactly {_shapes(forms)}"
        )
    return row, external_id


@functools.cache
def _known_fields(forms: tuple[tuple[str, ...], ...]) -> frozenset[str]:
    return frozenset(name for form in forms for name in form)


def _shapes(forms: tuple[tuple[str, ...], ...]) -> str:
    return " or ".join(", ".join(form) for form in forms)


def _classification_row(raw: _Row) -> ValidRow:
    row, external_id = _claimed(raw, FIELDS)
    return ValidRow(
        index=raw.index,
        external_id=external_id,
        subject_id=_subject_id(row),
        text=_text(row),
        label=_label(row, raw.allowed, raw.labels),
    )


def _generation_row(raw: _Row) -> ValidRow:
    row, external_id = _claimed(raw, PROMPT_FIELDS, MESSAGES_FIELDS)
    if "messages" in row:
        if given := [name for name in ("prompt", "response") if name in row]:
            raise _Rejected(
                given[0],
                f"{given[0]}: send either prompt and response, or messages, not both",
            )
        subject_id = _subject_id(row)
        turns, response = _messages(row)
        return ValidRow(raw.index, external_id, subject_id, "", "", response, turns)
    subject_id = _subject_id(row)
    prompt = _text(row, "prompt")
    return ValidRow(raw.index, external_id, subject_id, prompt, "", _text(row, "response"))


def _image_row(raw: _Row) -> ValidRow:
    row, external_id = _claimed(raw, IMAGE_FIELDS)
    subject_id = _subject_id(row)
    label = _label(row, raw.allowed, raw.labels)
    data = _image_bytes(row, raw.files)
    from governance.images import image_accepted
    from unlearning.images import ImageError

    try:
        facts = image_accepted(data)
    except ImageError as exc:
        message = str(exc)
        message = message if message.startswith("image:") else f"image: {message}"
        raise _Rejected("image", message) from None
    return ValidRow(
        index=raw.index,
        external_id=external_id,
        subject_id=subject_id,
        text="",
        label=label,
        image=data,
        image_digest="sha256:" + hashlib.sha256(data).hexdigest(),
        image_format=facts.format,
    )


_ROW_CHECKS = {
    CLASSIFICATION: _classification_row,
    GENERATION: _generation_row,
    IMAGE_CLASSIFICATION: _image_row,
}


def _messages(row: dict[Any, Any]) -> tuple[tuple[tuple[str, str], ...], str]:
    """The turns before the target and the target (the last, assistant turn)."""
    value = row["messages"]
    if not isinstance(value, list):
        raise _Rejected(
            "messages",
            f"messages: must be an array of {{role, content}} objects, got {_json_type(value)}",
        )
    if not value:
        raise _Rejected("messages", "messages: must not be empty")
    if len(value) > MAX_TURNS:
        raise _Rejected("messages", f"messages: more than {MAX_TURNS} turns")
    turns = tuple(_turn(number, turn) for number, turn in enumerate(value, 1))
    role, response = turns[-1]
    if role != "assistant":
        raise _Rejected(
            "messages",
            f"messages: the last turn must be the assistant's response (the target), "
            f"got role {role!r}",
        )
    if len(turns) < 2:
        raise _Rejected(
            "messages", "messages: needs at least one turn before the assistant's response"
        )
    return turns[:-1], response


def _turn(number: int, turn: Any) -> tuple[str, str]:
    where = f"messages: turn {number}"
    if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
        got = sorted(map(str, turn)) if isinstance(turn, dict) else _json_type(turn)
        raise _Rejected(
            "messages", f"{where}: must be an object with exactly role and content, got {got}"
        )
    role = turn["role"]
    if role not in ROLES:
        raise _Rejected("messages", f"{where}: role {_show(role)} is not one of {', '.join(ROLES)}")
    try:
        content = _content_text(turn["content"], "content")
    except _Rejected as rejected:
        raise _Rejected("messages", f"{where}: {rejected.error}") from None
    return role, content


def _image_bytes(row: dict[Any, Any], files: Mapping[str, bytes] | None) -> bytes:
    """The image's bytes: the uploaded file it names, or its base64 decoded."""
    value = _string(row, "image")
    if not value.strip():
        raise _Rejected("image", "image: must not be empty")
    if files is not None:
        if value not in files:
            raise _Rejected(
                "image", f"image: no uploaded file is named {_show(value)} (the images parts)"
            )
        return files[value]
    # 4 characters carry 3 bytes: a value too long for the limit is refused undecoded.
    limit = int(settings.LETHE_IMAGE_MAX_BYTES)
    if len(value) > 4 * (limit // 3 + 1):
        raise _Rejected("image", f"image: more than {limit} bytes once decoded")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Rejected(
            "image", "image: not valid base64 (standard alphabet, padded, no line breaks)"
        ) from None


def _string(row: dict[Any, Any], name: str) -> str:
    if name not in row:
        raise _Rejected(name, f"{name}: missing field")
    value = row[name]
    if not isinstance(value, str):
        raise _Rejected(name, f"{name}: must be a string, got {_json_type(value)}")
    if not _encodable(value):
        raise _Rejected(name, f"{name}: contains an unpaired surrogate (not valid Unicode)")
    return value


def _identifier(row: dict[Any, Any], name: str) -> str:
    value = _string(row, name).strip()
    if not value:
        raise _Rejected(name, f"{name}: must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise _Rejected(name, f"{name}: longer than {MAX_ID_LENGTH} characters")
    if match := _CONTROL.search(value):
        raise _Rejected(name, f"{name}: contains control character U+{ord(match[0]):04X}")
    return value


def _subject_id(row: dict[Any, Any]) -> str:
    try:
        return subject_ref_clean(_identifier(row, "subject_id"))
    except SubjectRefError as exc:
        raise _Rejected("subject_id", str(exc)) from None


def _text(row: dict[Any, Any], name: str = "text") -> str:
    if name not in row:
        raise _Rejected(name, f"{name}: missing field")
    return _content_text(row[name], name)


def _content_text(value: Any, name: str) -> str:
    """A text, prompt, response or turn: a non-blank storable string within the limit."""
    if not isinstance(value, str):
        raise _Rejected(name, f"{name}: must be a string, got {_json_type(value)}")
    if not _encodable(value):
        raise _Rejected(name, f"{name}: contains an unpaired surrogate (not valid Unicode)")
    if not value.strip():
        raise _Rejected(name, f"{name}: must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise _Rejected(name, f"{name}: longer than {MAX_TEXT_LENGTH} characters")
    if "\x00" in value:  # PostgreSQL text columns cannot hold NUL
        raise _Rejected(name, f"{name}: contains a NUL character")
    return value


def _label(row: dict[Any, Any], allowed: frozenset[str], labels: Sequence[str]) -> str:
    value = _string(row, "label")
    if value not in allowed:
        shown = ", ".join(labels[:LABELS_SHOWN])
        more = f" and {len(labels) - LABELS_SHOWN} more" if len(labels) > LABELS_SHOWN else ""
        raise _Rejected("label", f"label: {_show(value)} is not a dataset label ({shown}{more})")
    return value


def _encodable(value: str) -> bool:
    # Lone surrogates survive json.loads but not a UTF-8 database; encode() checks in C.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit] + "…" if len(text) > limit else text)
