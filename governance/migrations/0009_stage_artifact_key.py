"""Stage rows hold object keys in the artifact store, not file-system paths.

Before this, ``artifact_path`` held an absolute path on the machine that trained the
stage. The object key is the same path relative to ``ARTIFACT_ROOT``
(``model-7/gen-1/shard-000/stage-2-0.safetensors``), so the file-system backend, whose
location is ``ARTIFACT_ROOT``, finds the same file under the new name. Keys are derived
from each stage's own model, generation, shard and prefix rather than by cutting paths,
so a row written on another machine converts too.
"""

from django.db import migrations


def _key(stage):
    shard = stage.shard
    return (
        f"model-{shard.model_id}/gen-{shard.generation}/"
        f"shard-{shard.index:03d}/stage-{stage.prefix}.safetensors"
    )


def paths_to_keys(apps, schema_editor):
    Stage = apps.get_model("governance", "Stage")
    for stage in Stage.objects.exclude(artifact_key="").select_related("shard").iterator():
        Stage.objects.filter(pk=stage.pk).update(artifact_key=_key(stage))


def keys_to_paths(apps, schema_editor):
    from django.conf import settings

    Stage = apps.get_model("governance", "Stage")
    root = str(settings.ARTIFACT_ROOT).rstrip("/")
    for stage in Stage.objects.exclude(artifact_key="").iterator():
        Stage.objects.filter(pk=stage.pk).update(artifact_key=f"{root}/{stage.artifact_key}")


class Migration(migrations.Migration):
    dependencies = [("governance", "0008_tokens_dataset_scope")]

    operations = [
        migrations.RenameField("stage", "artifact_path", "artifact_key"),
        migrations.RunPython(paths_to_keys, keys_to_paths),
    ]
