from django.db import migrations, models

CHOICES = [("fixed", "Fixed"), ("scaled", "Scaled")]


class Migration(migrations.Migration):
    dependencies = [("governance", "0016_retrain_suffix")]

    # Existing models trained every stage for `epochs`: they keep "fixed", so their stages
    # replay exactly; models created from now on default to "scaled".
    operations = [
        migrations.AddField(
            model_name="unlearningmodel",
            name="stage_epochs",
            field=models.CharField(choices=CHOICES, default="fixed", max_length=10),
        ),
        migrations.AlterField(
            model_name="unlearningmodel",
            name="stage_epochs",
            field=models.CharField(choices=CHOICES, default="scaled", max_length=10),
        ),
    ]
