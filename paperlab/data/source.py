"""The one interface every data source implements, and the shared eval-padding helper.

A `Source` hands the trainer batches that are a pure function of (data seed, step), so a run that
is killed and resumed at step i sees exactly the batches it would have seen. Small sources live on
device (`on_device=True`): the trainer passes `device_data` into its jitted step as an argument and
calls `sample(device_data, step)` there, with no host round trip per step. Large sources
(`tfds:<name>`) are read on the host with `host_batch(step)`.

Batches are dicts: 'x' [B, *input_shape], 'y' (int labels [B], int targets [B, L] or float targets
[B, L], depending on `task`) and 'mask' (float32 weights, [B] or [B, L]). Eval batches all have
shape [batch_size, ...]: the last one is zero-padded and its padded rows have mask 0.
"""
import functools
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paperlab.errors import ConfigError

TASKS = ("classification", "sequence", "regression")


class Source:
  """Base class of the data sources; subclasses set the attributes and implement the methods."""

  name: str
  task: str                   # one of TASKS
  input_shape: tuple[int, ...]  # per example
  input_dtype: Any            # jnp.float32 or jnp.int32
  vocab_size: int | None      # input token vocabulary for int-token inputs, else None
  output_dim: int             # classes / target vocabulary / 1 for regression
  batch_size: int
  seed: int                   # the data seed
  on_device: bool
  device_data: Any            # pytree of device arrays, or None

  def __init__(self, config: Any, batch_size: int):
    """Sets name, seed and batch_size from a resolved data config (see `paperlab.data.config`)."""
    self.name = config.name
    self.seed = config.seed
    self.batch_size = batch_size
    self._config_items = tuple(sorted(config.to_dict().items()))

  def sample(self, device_data: Any, step: jax.Array | int) -> dict[str, jax.Array]:
    """Training batch `step`, computed with pure jnp (jittable, `step` may be traced)."""
    raise NotImplementedError(f"{self.name} is read on the host: use host_batch(step)")

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """Training batch `step` as numpy arrays (for on-device sources: the same batch as `sample`)."""
    batch = _jitted_sample(self, self.device_data, jnp.asarray(step, jnp.int32))
    return {k: np.asarray(v) for k, v in batch.items()}

  def host_batches(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """host_batch(start_step), host_batch(start_step + 1), ... (host sources may prefetch)."""
    for step in itertools.count(start_step):
      yield self.host_batch(step)

  def eval_batches(self, batch_size: int, step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The fixed held-out data in batches of exactly `batch_size` rows (last one padded)."""
    raise NotImplementedError

  def describe(self) -> str:
    """One line for the console."""
    raise NotImplementedError

  def static_key(self) -> tuple:
    """What fixes `sample` apart from `device_data`: equal keys give equal batches. Sources are
    hashed by it, so equal sources share compiled functions (static arguments of jax.jit)."""
    return (type(self), self._config_items, self.batch_size)

  def __eq__(self, other) -> bool:
    return isinstance(other, Source) and self.static_key() == other.static_key()

  def __hash__(self) -> int:
    return hash(self.static_key())

  def __repr__(self) -> str:
    return f"<{type(self).__name__} {self.describe()}>"


@functools.partial(jax.jit, static_argnums=0)
def _jitted_sample(source: Source, device_data: Any, step: jax.Array) -> dict[str, jax.Array]:
  return source.sample(device_data, step)


def padded_batches(arrays: Mapping[str, np.ndarray],
                   batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Splits equally long arrays (one of them 'mask') into batches of exactly `batch_size` rows.

  The last batch is padded with zeros, so its padded rows carry mask 0 and count for nothing.
  """
  if batch_size < 1:
    raise ConfigError(f"eval batch size must be >= 1, got {batch_size}")
  num = len(arrays["mask"])
  for start in range(0, num, batch_size):
    batch = {}
    for key, value in arrays.items():
      chunk = np.asarray(value[start:start + batch_size])
      if len(chunk) < batch_size:
        pad = np.zeros((batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)
        chunk = np.concatenate([chunk, pad])
      batch[key] = chunk
    yield batch
