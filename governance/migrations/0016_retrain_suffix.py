from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("governance", "0015_ingest_lineage")]

    operations: list = [
        migrations.AddField(
            model_name="trainingjob",
            name="retrain_mode",
            field=models.CharField(
                blank=True,
                choices=[("full", "Full"), ("suffix", "Suffix")],
                help_text="Empty: not a retrain.",
                max_length=10,
            ),
        ),
    ]
