"""The per-process host pool (governance.engine.HostPool): bounded by count and bytes,
least recently used first out, never evicting a host in use, on the configured device.

Hosts are real tiny-bert hosts built from a config (milliseconds each); the serving test
trains two tiny models and predicts with both through a pool that holds only one host.
"""

from __future__ import annotations

import pytest
import torch
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from governance import engine
from governance.engine import HostPool
from governance.services.serving import model_predict, predictors
from governance.services.training import model_create, model_train
from tests.factories import UnlearningModelFactory
from tests.governance import test_training_services as training

# The trained-model fixtures of the training tests, shared.
dataset = training.dataset
_run_all, _spec = training._run_all, training._spec


@pytest.fixture
def bounded(settings):
    """A fresh pool on the CPU holding at most two hosts, with no byte bound to speak of."""
    settings.LETHE_DEVICE = "cpu"
    settings.LETHE_HOST_POOL_MAX_HOSTS = 2
    settings.LETHE_HOST_POOL_MAX_BYTES = 10**12
    return HostPool()


def _models(n):
    """n untrained models whose host configurations all differ (1..n slices)."""
    return [UnlearningModelFactory(num_slices=k) for k in range(1, n + 1)]


def test_hosts_are_shared_per_configuration_and_purpose(db, bounded):
    a = UnlearningModelFactory(num_slices=2)
    same = UnlearningModelFactory(num_slices=2)
    host, lock = bounded.get(a, "serving")
    assert bounded.get(same, "serving") == (host, lock)
    assert bounded.get(a, "training")[0] is not host
    assert host.device == torch.device("cpu")
    assert len(bounded) == 2


def test_least_recently_used_host_goes_first_and_is_rebuilt_on_next_use(db, bounded):
    a, b, c = _models(3)
    host_a, lock_a = bounded.get(a, "serving")
    host_b, _ = bounded.get(b, "serving")
    assert bounded.get(a, "serving")[0] is host_a  # a is now the most recent
    bounded.get(c, "serving")

    assert len(bounded) == 2
    assert bounded.evictions == 1
    assert not bounded.holds(host_b)
    assert bounded.holds(host_a)
    rebuilt, lock = bounded.get(b, "serving")
    assert rebuilt is not host_b
    assert rebuilt.num_groups == host_b.num_groups
    # The lock belongs to the configuration: the evicted host and its successor share it.
    assert bounded.get(a, "serving")[1] is lock_a
    assert lock is bounded.get(b, "serving")[1]


def test_a_host_in_use_is_never_evicted(db, bounded, settings):
    settings.LETHE_HOST_POOL_MAX_HOSTS = 1
    a, b = _models(2)
    host_a, lock_a = bounded.get(a, "serving")
    with lock_a:
        host_b, _ = bounded.get(b, "serving")
        assert bounded.holds(host_a)  # over the bound while a is in use
        assert len(bounded) == 2
    bounded.get(b, "serving")  # the next request restores the bound
    assert not bounded.holds(host_a)
    assert bounded.holds(host_b)
    assert len(bounded) == 1


def test_the_byte_bound_evicts_too(db, bounded, settings):
    a, b = _models(2)
    host_a, _ = bounded.get(a, "serving")
    one = bounded.nbytes()
    assert one > 1_000_000  # tiny-bert's embeddings alone are 30522 x 64 fp32
    settings.LETHE_HOST_POOL_MAX_BYTES = one + one // 2
    host_b, _ = bounded.get(b, "serving")
    assert not bounded.holds(host_a)
    assert bounded.holds(host_b)
    assert bounded.nbytes() <= settings.LETHE_HOST_POOL_MAX_BYTES
    # A single host larger than the bound is still served: the newest is never evicted.
    settings.LETHE_HOST_POOL_MAX_BYTES = 1
    assert bounded.get(a, "serving")[0] is not host_a
    assert len(bounded) == 1


def test_device_setting_is_checked(db, settings):
    pool = HostPool()
    settings.LETHE_DEVICE = "gpu"
    with pytest.raises(ImproperlyConfigured, match="LETHE_DEVICE: device: 'gpu' is not a device"):
        pool.get(UnlearningModelFactory(), "serving")
    if not torch.cuda.is_available():
        settings.LETHE_DEVICE = "cuda:0"
        with pytest.raises(ImproperlyConfigured, match="sees no CUDA device"):
            pool.device()
    settings.LETHE_DEVICE = "auto"
    assert pool.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_training_precision_comes_from_the_model(db):
    model = UnlearningModelFactory()
    assert engine.train_settings(model).precision == "fp32"
    model.precision = "bf16"
    assert engine.train_settings(model).precision == "bf16"


def _trained(dataset, name, slices, django_capture_on_commit_callbacks):
    spec = _spec(dataset, name=name, shards=1, slices=slices, sequences=1)
    model = model_create(actor="test", spec=spec)
    with django_capture_on_commit_callbacks(execute=False):
        _run_all(model_train(actor="test", model=model))
    model.refresh_from_db()
    assert model.status == "ready"
    return model


def test_serving_many_models_through_a_one_host_pool(
    dataset, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_DEVICE = "cpu"
    first = _trained(dataset, "two-slices", 2, django_capture_on_commit_callbacks)
    second = _trained(dataset, "three-slices", 3, django_capture_on_commit_callbacks)
    engine.hosts.clear()
    settings.LETHE_HOST_POOL_MAX_HOSTS = 1
    inputs = ["my parcel is late", "I was charged twice"]
    try:
        before = model_predict(model=first, inputs=inputs)
        host = predictors._items[first.pk][1].host
        other = model_predict(model=second, inputs=inputs)
        # The second model's host pushed the first one's out, and with it its ensemble:
        # nothing keeps the evicted host alive in this process.
        assert not engine.hosts.holds(host)
        assert first.pk not in predictors._items
        assert len(engine.hosts) == 1
        again = model_predict(model=first, inputs=inputs)
        assert again == before  # rebuilt from the same stages: the same answers
        assert predictors._items[first.pk][1].host is not host
        assert second.pk not in predictors._items
        assert other.manifest_version == 1
    finally:
        engine.hosts.clear()


def test_worker_device_option_is_checked_and_sets_the_device(db, settings):
    from governance.management.commands.worker import _use_device

    settings.LETHE_DEVICE = "auto"  # through the fixture: restored after the test
    with pytest.raises(CommandError, match="--device: device: 'gpu' is not a device"):
        call_command("worker", "--device", "gpu")
    _use_device("cpu")
    assert settings.LETHE_DEVICE == "cpu"
    assert HostPool().device() == torch.device("cpu")
