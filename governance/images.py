"""Image records' bytes in the artifact store: put, read, delete every version, and ask
whether anything is left.

Each image record's bytes are one object under a fresh random key
(``images/dataset-7/3f2a....png``), never a key derived from the content: two records with
equal bytes get two objects, so erasing one never deletes what the other still needs, and
a key tells nothing about the image. The record row keeps the key (on its tombstone too)
and the bytes' digest.

The store is the one every process shares (``governance.artifacts.artifact_objects``: the
file system under ``ARTIFACT_ROOT``, or the S3 bucket), and whether an image is gone is
asked of it, object and versions, as for stage bytes (``stage_bytes_exist``): that is the
question a certificate's image claim answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.conf import settings

from governance.artifacts import artifact_objects

if TYPE_CHECKING:
    from unlearning.images import ImageFacts

PREFIX = "images"
_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg"}


def image_accepted(data: bytes) -> ImageFacts:
    """Whether ``data`` is an image Lethe takes: PNG or JPEG, fully decoded, within
    ``LETHE_IMAGE_MAX_BYTES`` and ``LETHE_IMAGE_MAX_PIXELS``. The one check ingest,
    prediction and the model page's panel apply.

    Raises:
        unlearning.images.ImageError: what is wrong, in words a data platform can act on.
    """
    from unlearning.images import image_check  # torch-free; Pillow on demand

    return image_check(
        data,
        max_bytes=int(settings.LETHE_IMAGE_MAX_BYTES),
        max_pixels=int(settings.LETHE_IMAGE_MAX_PIXELS),
    )


def image_key_new(*, dataset_id: int, image_format: str) -> str:
    """A key no other object has: random, with the format's file suffix."""
    return f"{PREFIX}/dataset-{dataset_id}/{uuid.uuid4().hex}{_SUFFIXES.get(image_format, '')}"


def image_put(*, dataset_id: int, data: bytes, image_format: str) -> str:
    """Store one record's image under a new key; returns the key."""
    key = image_key_new(dataset_id=dataset_id, image_format=image_format)
    artifact_objects().put(key, data)
    return key


def image_bytes(key: str) -> bytes:
    """An image's bytes (``FileNotFoundError`` once erased)."""
    handle = artifact_objects().open(key)
    try:
        return handle.read()
    finally:
        handle.close()


def images_delete(keys: Iterable[str]) -> list[str]:
    """Delete each key's object and, in a versioned bucket, every version and delete
    marker; returns the keys that held something. Safe to repeat."""
    objects = artifact_objects()
    return [key for key in keys if key and objects.delete(key)]


def image_bytes_exist(keys: Iterable[str]) -> list[str]:
    """Where any of the images' bytes still are: each object a HEAD finds, and each
    version a versioned bucket keeps. Empty means gone."""
    objects = artifact_objects()
    keys = [key for key in keys if key]
    found = [f"object {key}" for key in keys if objects.exists(key)]
    return found + [f"version {k}@{v['VersionId']}" for k in keys for v in objects.versions(k)]
