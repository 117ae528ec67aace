"""Drop the single-column foreign key indexes that a composite index already leads with.

Each one was maintained on every ingested record (or placed assignment) and never chosen
by a query: record_unique_id (dataset, external_id) and record_subject (subject, dataset)
serve record lookups by dataset or subject, assignment_one_per_generation (record, ...)
and assignment_slice serve assignments by record or slice.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("governance", "0014_erasure_path")]

    operations: list = [
        migrations.AlterField(
            model_name="record",
            name="dataset",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="records",
                to="governance.dataset",
            ),
        ),
        migrations.AlterField(
            model_name="record",
            name="subject",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="records",
                to="governance.subject",
            ),
        ),
        migrations.AlterField(
            model_name="sliceassignment",
            name="record",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="assignments",
                to="governance.record",
            ),
        ),
        migrations.AlterField(
            model_name="sliceassignment",
            name="slice",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to="governance.slice",
            ),
        ),
    ]
