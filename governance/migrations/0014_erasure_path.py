from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("governance", "0013_tasks")]

    operations: list = [
        migrations.AddField(
            model_name="erasurerequest",
            name="impact_stamp",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="What the impact was computed from (impact_stamp).",
            ),
        ),
    ]
