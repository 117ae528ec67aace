"""API tokens that expire and can be revoked; datasets with an owner and grants.

- ``ApiToken``: ``name``, ``expires_at`` and ``revoked_at`` (existing tokens keep working:
  no expiry, not revoked), and an index on ``prefix``, which the commands look tokens up by.
- ``Dataset.owner`` and ``DatasetGrant``: an integration account's scope. Datasets created
  before this migration get as owner the account their ``dataset.created`` audit event
  names (``user:<username>``), so an integration account keeps the datasets it made; a
  dataset made by a system actor, or by a user since deleted, gets no owner and is reached
  by integration accounts only through a grant.

The audit actor's form is written out here, not imported, so the migration keeps meaning
what it meant when it ran.
"""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

USER_ACTOR = "user:"


def owners_from_audit(apps: Any, schema_editor: Any) -> None:
    Dataset = apps.get_model("governance", "Dataset")
    AuditEvent = apps.get_model("governance", "AuditEvent")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    created = AuditEvent.objects.filter(
        action="dataset.created", object_type="dataset", actor__startswith=USER_ACTOR
    ).values_list("object_id", "actor")
    for object_id, actor in created.iterator(chunk_size=2000):
        user = User.objects.filter(username=actor[len(USER_ACTOR) :]).first()
        if user is not None and object_id.isdigit():
            Dataset.objects.filter(pk=int(object_id), owner__isnull=True).update(owner=user)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0007_worker_heartbeat"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="name",
            field=models.CharField(blank=True, help_text="What the token is for.", max_length=100),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, help_text="None: never expires.", null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="apitoken",
            index=models.Index(fields=["prefix"], name="api_token_prefix"),
        ),
        migrations.AddField(
            model_name="dataset",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="The account that created it.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="datasets_owned",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.CreateModel(
            name="DatasetGrant",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("granted_at", models.DateTimeField(auto_now_add=True)),
                (
                    "dataset",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="grants",
                        to="governance.dataset",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dataset_grants",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("dataset", "user"), name="dataset_grant_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(owners_from_audit, migrations.RunPython.noop, elidable=True),
    ]
