"""factory_boy factories for rows that tests build by hand rather than through a service.

Most tests make their data the way the product does (``dataset_create``, the API, a real
training), and should keep doing so. These are for the few that need rows a service would
never produce together, such as a stage grid with every state or a job frozen half-way:
each factory fills the required fields with valid defaults, so a test names only what it
is about. Unique names come from a sequence, so two calls never collide.
"""

from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from governance.models import Dataset, TrainingJob, UnlearningModel


class DatasetFactory(DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    labels = factory.LazyFunction(lambda: ["a", "b"])


class UnlearningModelFactory(DjangoModelFactory):
    """An S3T model on tiny-bert (2 shards x 2 slices, 2 cyclic sequences), never trained."""

    class Meta:
        model = UnlearningModel

    name = factory.Sequence(lambda n: f"model-{n}")
    dataset = factory.SubFactory(DatasetFactory)
    base_model = "tiny-bert"
    num_shards = 2
    num_slices = 2
    budget = 2
    sequence_policy = UnlearningModel.Policy.CYCLIC


class TrainingJobFactory(DjangoModelFactory):
    """A first-training job of the model's current generation, still queued."""

    class Meta:
        model = TrainingJob

    model = factory.SubFactory(UnlearningModelFactory)
    generation = factory.LazyAttribute(lambda job: job.model.generation)
    status = TrainingJob.Status.QUEUED
