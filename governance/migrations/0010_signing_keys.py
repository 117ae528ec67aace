"""The registry of public keys that ever signed (``SigningKey``), so rotation keeps old
certificates verifiable.

An installation upgraded from before the registry has certificates (and checkpoints)
signed by its current key, which was never registered. The data step registers that key,
dated by its first use, when it can be read without creating anything (configured, or an
existing key file) and it is the key those rows name; otherwise the key is registered the
next time it signs, and the current key verifies without the registry anyway.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models


def register_current_key(apps, schema_editor):
    DeletionCertificate = apps.get_model("governance", "DeletionCertificate")
    AuditCheckpoint = apps.get_model("governance", "AuditCheckpoint")
    SigningKey = apps.get_model("governance", "SigningKey")
    first_used = {}
    rows = [
        *DeletionCertificate.objects.values_list("key_id", "issued_at"),
        *AuditCheckpoint.objects.values_list("key_id", "created_at"),
    ]
    for key_id, at in rows:
        first_used[key_id] = min(at, first_used.get(key_id, at))
    if not first_used:
        return
    from governance.certificates import signing

    if not signing.signing_key_configured() and not signing.signing_key_path().exists():
        return
    try:
        public = signing.signing_key().public_key()
    except ImproperlyConfigured:
        return  # a broken key is reported at start-up and at signing, not here
    info = signing.public_key_describe(public)
    if info["key_id"] in first_used:
        SigningKey.objects.get_or_create(
            key_id=info["key_id"],
            defaults={
                "algorithm": info["algorithm"],
                "public_key_pem": info["public_key_pem"],
                "first_used_at": first_used[info["key_id"]],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("governance", "0009_stage_artifact_key")]

    operations = [
        migrations.CreateModel(
            name="SigningKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key_id", models.CharField(max_length=64, unique=True)),
                ("algorithm", models.CharField(max_length=16)),
                ("public_key_pem", models.TextField(help_text="SubjectPublicKeyInfo, PEM.")),
                ("first_used_at", models.DateTimeField()),
            ],
            options={"ordering": ["first_used_at", "pk"]},
        ),
        migrations.RunPython(register_current_key, migrations.RunPython.noop),
    ]
