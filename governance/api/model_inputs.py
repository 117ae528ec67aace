"""What a prediction or generation request may carry, checked before the engine sees it.

Images come as base64 strings in JSON or as ``multipart/form-data`` file parts named
``images``; each is decoded and checked (PNG or JPEG, within the size limits) here, so a
bad one is a 400 naming ``images[i]`` and never reaches a worker or the model.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request

from governance.api.ingest import JSONParser
from governance.errors import ApplicationError
from governance.models import Dataset

TASKS: tuple[str, ...] = tuple(Dataset.Task.values)
MAX_IMAGES = 64
# A base64 string of the largest image a request may carry (4 characters per 3 bytes).
MAX_BASE64 = 4 * ((20 * 1024 * 1024) // 3 + 1)
PREDICT_PARSERS = (JSONParser, MultiPartParser)


def field_missing(field: str, what: str) -> ApplicationError:
    return ApplicationError(
        code="invalid",
        message=f"{field}: missing field ({what})",
        details={field: ["This field is required."]},
    )


def _field_error(field: str, message: str) -> ApplicationError:
    return ApplicationError(
        code="invalid", message=f"{field}: {message}", details={field: [message]}
    )


def prediction_images(request: Request) -> list[bytes]:
    """The checked image bytes of a prediction request, in order.

    Raises:
        ApplicationError: no images, too many, a field that is not base64, or an image
            that does not decode or is too large (400 naming ``images`` or ``images[i]``).
    """
    from governance.images import image_accepted
    from unlearning.images import ImageError

    files = request.FILES.getlist("images") if hasattr(request, "FILES") else []
    if files:
        blobs = [f.read() for f in files]
    else:
        data = request.data
        if not isinstance(data, dict) or set(data) - {"images"}:
            extra = sorted(set(data) - {"images"}) if isinstance(data, dict) else []
            name = extra[0] if extra else "images"
            raise _field_error(name, "an image classifier takes only images (base64 strings)")
        raw = data.get("images")
        if raw is None:
            raise field_missing("images", "base64 PNG or JPEG images")
        if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
            raise _field_error("images", "must be a list of base64 strings")
        blobs = [_base64(f"images[{i}]", r) for i, r in enumerate(raw)]
    if not blobs:
        raise _field_error("images", "at least one image")
    if len(blobs) > MAX_IMAGES:
        raise _field_error("images", f"at most {MAX_IMAGES} images per request")
    for i, blob in enumerate(blobs):
        try:
            image_accepted(blob)
        except ImageError as exc:
            raise _field_error(f"images[{i}]", str(exc)) from None
    return blobs


def _base64(field: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _field_error(field, "not valid base64") from None


def generation_prompts(raw: Any) -> list[Any]:
    """Prompts as the generate endpoint takes them: strings or lists of {role, content}."""
    if not isinstance(raw, list) or not raw:
        raise _field_error("inputs", "a non-empty list of prompts")
    prompts: list[Any] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            if not item.strip():
                raise _field_error(f"inputs[{i}]", "must not be blank")
            prompts.append(item)
            continue
        if not isinstance(item, list) or not item:
            raise _field_error(f"inputs[{i}]", "a prompt string or a list of {role, content} turns")
        for j, turn in enumerate(item):
            if (
                not isinstance(turn, dict)
                or set(turn) != {"role", "content"}
                or turn["role"] not in ("system", "user", "assistant")
                or not isinstance(turn["content"], str)
            ):
                raise _field_error(
                    f"inputs[{i}][{j}]",
                    "a turn is {role: system|user|assistant, content: string}",
                )
        prompts.append(item)
    return prompts


__all__ = [
    "MAX_BASE64",
    "PREDICT_PARSERS",
    "TASKS",
    "field_missing",
    "generation_prompts",
    "prediction_images",
]
