"""Mesh construction, batch placement and cluster detection."""
import jax
import ml_collections
import numpy as np
import pytest

from paperlab import dist
from paperlab.errors import ConfigError


def test_mesh_from_config():
  assert dist.make_mesh(ml_collections.ConfigDict({"data": -1})).shape["data"] == jax.device_count()
  assert dist.make_mesh(ml_collections.ConfigDict({"data": 2})).shape["data"] == 2
  with pytest.raises(ConfigError, match="config.mesh.data=99 but only 8 devices"):
    dist.make_mesh(ml_collections.ConfigDict({"data": 99}))


def test_batch_must_divide_over_devices():
  mesh = dist.make_mesh(ml_collections.ConfigDict({"data": 8}))
  dist.check_batch_size(64, mesh)
  with pytest.raises(ConfigError, match="config.batch_size=30 must be divisible by the 8 devices"):
    dist.check_batch_size(30, mesh)


def test_global_batch_is_split_over_the_data_axis():
  mesh = dist.make_mesh(ml_collections.ConfigDict({"data": 8}))
  x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  placed = dist.global_batch({"x": x}, mesh)["x"]
  assert len(placed.addressable_shards) == 8
  assert all(s.data.shape == (2, 3) for s in placed.addressable_shards)
  np.testing.assert_array_equal(np.asarray(placed), x)


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, None),  # a single-task SLURM job is not a cluster
    ({"SLURM_NTASKS": "4", "SLURM_PROCID": "2"}, "slurm"),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1"}, "tpu"),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, "explicit"),
])
def test_cluster_environment(monkeypatch, env, expected):
  for key in ("SLURM_NTASKS", "SLURM_PROCID", "TPU_WORKER_HOSTNAMES", "JAX_COORDINATOR_ADDRESS"):
    monkeypatch.delenv(key, raising=False)
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  assert dist.cluster_environment() == expected
  if expected is None:
    dist.maybe_initialize_distributed()  # a no-op without a cluster: nothing to connect to
    assert jax.process_count() == 1
