"""Django admin: browse lineage and training; the audit trail is read-only here too."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from governance import models
from governance.services import grants, webhooks


class _ReadOnly:
    """State changes go through the services (audited) and audit rows are append-only:
    the admin only shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(models.Subject)
class SubjectAdmin(admin.ModelAdmin[models.Subject]):
    search_fields = ("external_ref",)
    list_display = ("external_ref", "created_at")


@admin.register(models.Dataset)
class DatasetAdmin(admin.ModelAdmin[models.Dataset]):
    list_display = ("name", "owner", "created_at")


class DatasetGrantForm(forms.ModelForm[models.DatasetGrant]):
    class Meta:
        model = models.DatasetGrant
        fields = ("dataset", "user")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("dataset") and data.get("user"):
            problem = grants.dataset_grant_problem(dataset=data["dataset"], user=data["user"])
            if problem is not None:
                raise forms.ValidationError(problem.message)
        return data


@admin.register(models.DatasetGrant)
class DatasetGrantAdmin(admin.ModelAdmin[models.DatasetGrant]):
    """Grants are given and withdrawn here through the services, so each is audited."""

    form = DatasetGrantForm
    list_display = ("dataset", "user", "granted_at")
    list_filter = ("dataset",)
    raw_id_fields = ("user",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a grant has nothing to edit: withdraw it and grant another

    def save_model(
        self, request: HttpRequest, obj: models.DatasetGrant, form: Any, change: bool
    ) -> None:
        grant = grants.dataset_grant_create(actor=request.user, dataset=obj.dataset, user=obj.user)
        obj.pk = grant.pk

    def delete_model(self, request: HttpRequest, obj: models.DatasetGrant) -> None:
        grants.dataset_grant_delete(actor=request.user, dataset=obj.dataset, user=obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for grant in queryset.select_related("dataset", "user"):
            self.delete_model(request, grant)


@admin.register(models.Record)
class RecordAdmin(admin.ModelAdmin[models.Record]):
    list_display = ("external_id", "dataset", "subject", "label", "status", "erased_at")
    list_filter = ("status", "dataset")
    search_fields = ("external_id", "subject__external_ref")
    raw_id_fields = ("subject",)


@admin.register(models.UnlearningModel)
class UnlearningModelAdmin(admin.ModelAdmin[models.UnlearningModel]):
    list_display = (
        "name",
        "dataset",
        "base_model",
        "num_shards",
        "num_slices",
        "budget",
        "sequence_policy",
        "status",
        "generation",
    )


@admin.register(models.Stage)
class StageAdmin(admin.ModelAdmin[models.Stage]):
    list_display = ("id", "shard", "prefix", "position", "state", "tensor_digest")
    list_filter = ("state",)
    raw_id_fields = ("shard",)
    filter_horizontal = ()


@admin.register(models.ServingManifest)
class ServingManifestAdmin(admin.ModelAdmin[models.ServingManifest]):
    list_display = ("model", "version", "generation", "digest", "reason", "created_at")


@admin.register(models.TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin[models.TrainingJob]):
    list_display = ("id", "model", "generation", "kind", "status", "stages_done", "stages_total")


@admin.register(models.AuditEvent)
class AuditEventAdmin(_ReadOnly, admin.ModelAdmin[models.AuditEvent]):
    list_display = ("seq", "created_at", "actor", "action", "object_type", "object_id")
    list_filter = ("action",)


@admin.register(models.ErasureRequest)
class ErasureRequestAdmin(_ReadOnly, admin.ModelAdmin[models.ErasureRequest]):
    list_display = ("id", "subject_ref", "status", "channel", "received_at", "due_at")
    list_filter = ("status", "channel")
    search_fields = ("subject_ref",)


@admin.register(models.DeletionCertificate)
class DeletionCertificateAdmin(_ReadOnly, admin.ModelAdmin[models.DeletionCertificate]):
    list_display = ("certificate_id", "request", "key_id", "issued_at")


@admin.register(models.WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin[models.WebhookSubscription]):
    """Browse and switch off subscriptions; secrets stay out of the admin's pages."""

    list_display = ("pk", "url", "owner", "active", "requires_confirmation", "created_at")
    list_filter = ("active", "requires_confirmation")
    exclude = ("secret", "previous_secret")
    readonly_fields = ("owner", "failing_since", "previous_secret_valid_until", "created_at")
    actions = None  # no bulk delete: each deletion goes through the service, audited

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made on the API or the page, where its secret is shown once

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        webhooks.webhook_update(actor=request.user, subscription=obj, changes=changes)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        webhooks.webhook_delete(actor=request.user, subscription=obj)


@admin.register(models.WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly, admin.ModelAdmin[models.WebhookDelivery]):
    list_display = ("pk", "event", "subscription", "status", "attempts", "response_code")
    list_filter = ("status",)


@admin.register(models.ErasureConfirmation)
class ErasureConfirmationAdmin(_ReadOnly, admin.ModelAdmin[models.ErasureConfirmation]):
    list_display = ("request", "recipient", "status", "confirmed_at")
    list_filter = ("status",)
