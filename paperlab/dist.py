"""Devices: the data-parallel mesh, shardings, and multi-host start-up.

Data parallelism: the batch is split over the mesh axis 'data'; parameters and optimizer state are
replicated. XLA inserts the gradient all-reduce. Multi-host: when a cluster environment is present
(SLURM with several tasks, a TPU VM slice, or an explicit JAX_COORDINATOR_ADDRESS),
`jax.distributed.initialize()` connects the processes before anything touches a device; every process
then runs the same program on its own devices, and process 0 writes the run directory.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from paperlab.errors import ConfigError

_initialized = False


def cluster_environment() -> str | None:
  """Which multi-process launcher started us, if any."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return "explicit"
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
    return "slurm"
  if os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1:
    return "tpu"
  return None


def maybe_initialize_distributed() -> None:
  """Calls jax.distributed.initialize() once when a cluster environment is detected; else nothing.

  jax auto-detects the coordinator, process count and id for SLURM and TPU VMs; for other schedulers
  set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  """
  global _initialized
  if _initialized or cluster_environment() is None:
    return
  if cluster_environment() == "explicit":
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]))
  else:
    jax.distributed.initialize()
  _initialized = True


def make_mesh(mesh_config) -> Mesh:
  """A 1-D ('data',) mesh over `mesh_config.data` devices (-1: all of them)."""
  devices = jax.devices()
  count = mesh_config.get("data", -1)
  count = len(devices) if count == -1 else count
  if count > len(devices):
    raise ConfigError(f"config.mesh.data={count} but only {len(devices)} devices are available")
  return Mesh(np.asarray(devices[:count]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over 'data'."""
  return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "config.batch_size") -> None:
  n = mesh.shape["data"]
  if batch_size % n:
    raise ConfigError(f"{what}={batch_size} must be divisible by the {n} devices of the data mesh")


def is_main_process() -> bool:
  return jax.process_index() == 0


def global_batch(batch: dict, mesh: Mesh) -> dict:
  """A host batch (numpy, the same global batch on every process) as a sharded global jax.Array."""
  sharding = batch_sharded(mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  # Each process contributes the rows its addressable devices hold.
  def put(x):
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(put, batch)
