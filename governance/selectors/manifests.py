"""Reads: which serving manifest is in force. The one definition used everywhere.

The manifest in force for a model is its highest version. Manifests are append-only (a new
version for every change), so "latest" needs no state flag that could disagree with it.
"""

from __future__ import annotations

from governance.errors import ApplicationError
from governance.models import ServingManifest, UnlearningModel


def manifest_latest(model: UnlearningModel) -> ServingManifest | None:
    """The manifest in force for ``model``, or ``None`` before its first publication."""
    return ServingManifest.objects.filter(model=model).order_by("-version").first()


def manifest_current(model: UnlearningModel) -> ServingManifest:
    """The manifest in force; a 409 ``model_not_ready`` while the model has none."""
    manifest = manifest_latest(model)
    if manifest is None:
        raise ApplicationError(
            code="model_not_ready",
            status=409,
            message="model: no serving manifest yet; train the model first",
        )
    return manifest
