"""`random_labels`: memorize random labels that are redrawn every K steps (plasticity benchmark).

The iterated random-label memorization task used to measure loss of plasticity (Lyle et al.,
"Understanding plasticity in neural networks", ICML 2023; and "Normalization and effective
learning rates in reinforcement learning", NeurIPS 2024, which redraws MNIST labels every 1000
steps). A fixed set of N inputs gets labels drawn uniformly at random from C classes; every
K = reshuffle_every steps a new phase starts with freshly drawn labels:

  phase(step) = step // K,    labels_p = randint(fold_in(stream_key(seed, LABELS), p), [N], 0, C).

Inputs: 'digits' (default: the digits training images, `paperlab.data.digits`, so num_examples
must be <= 1437 and takes the first ones) or 'gaussian' (N vectors x ~ N(0, I_dim), fixed by
stream INPUTS of the data seed; num_examples defaults to 1024 and dim to 64). Batches visit the
inputs without replacement epoch by epoch, as for any finite dataset, and carry the labels of the
phase of their step. `eval_batches(step)` runs over all N inputs with the labels of the phase of
`step`: its accuracy is the memorization accuracy of the current phase.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from paperlab.data import config as config_lib
from paperlab.data import digits as digits_lib
from paperlab.data import sampling
from paperlab.data.source import Source, padded_batches

INPUTS = ("digits", "gaussian")
GAUSSIAN_DEFAULT_NUM_EXAMPLES = 1024
GAUSSIAN_DEFAULT_DIM = 64


def default_config(name: str = "random_labels") -> ml_collections.ConfigDict:
  return config_lib.base_config(
      name, inputs="digits", num_classes=10, reshuffle_every=1000,
      num_examples=config_lib.placeholder(int), dim=config_lib.placeholder(int))


def phase_labels(seed: int, num_examples: int, num_classes: int, phase) -> jax.Array:
  """labels_p for p = phase: int32 [num_examples] uniform in [0, num_classes)."""
  key = jax.random.fold_in(sampling.stream_key(seed, sampling.LABELS), phase)
  return jax.random.randint(key, (num_examples,), 0, num_classes, jnp.int32)


_phase_labels_jit = jax.jit(phase_labels, static_argnums=(1, 2))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _gaussian_jit(seed, num_examples: int, dim: int) -> jax.Array:
  return jax.random.normal(sampling.stream_key(seed, sampling.INPUTS), (num_examples, dim))


def _inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  if config.inputs == "digits":
    config_lib.require(config.dim is None,
                       "config.data.dim only applies to inputs='gaussian' (digits are 8x8x1)")
    train_x = digits_lib.load_split()[0]
    num = len(train_x) if config.num_examples is None else config.num_examples
    config_lib.require(1 <= num <= len(train_x),
                       f"config.data.num_examples must be in [1, {len(train_x)}] for "
                       f"inputs='digits', got {num}")
    return train_x[:num]
  num = GAUSSIAN_DEFAULT_NUM_EXAMPLES if config.num_examples is None else config.num_examples
  dim = GAUSSIAN_DEFAULT_DIM if config.dim is None else config.dim
  config_lib.require(num >= 1, f"config.data.num_examples must be >= 1, got {num}")
  config_lib.require(dim >= 1, f"config.data.dim must be >= 1, got {dim}")
  return np.asarray(_gaussian_jit(config.seed, num, dim))


class RandomLabelsSource(Source):
  """Fixed inputs on device; labels of each phase generated inside jit from (seed, phase)."""

  task = "classification"
  input_dtype = jnp.float32
  vocab_size = None
  on_device = True

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int):
    config_lib.require(config.inputs in INPUTS, f"config.data.inputs must be one of "
                       f"{', '.join(INPUTS)}, got {config.inputs!r}")
    config_lib.require(config.num_classes >= 2,
                       f"config.data.num_classes must be >= 2, got {config.num_classes}")
    config_lib.require(config.reshuffle_every >= 1,
                       f"config.data.reshuffle_every must be >= 1, got {config.reshuffle_every}")
    super().__init__(config, batch_size)
    self.inputs_kind = config.inputs
    self.output_dim = config.num_classes
    self.reshuffle_every = config.reshuffle_every
    inputs = _inputs(config)
    self.num_examples = len(inputs)
    self.input_shape = tuple(inputs.shape[1:])
    self._inputs = inputs
    self.device_data = {"x": jax.device_put(inputs)}

  def phase_labels(self, phase) -> jax.Array:
    """int32 [N]: the labels of every input during phase `phase` (pure jnp, jittable)."""
    return _phase_labels_jit(self.seed, self.num_examples, self.output_dim, phase)

  def sample(self, device_data, step):
    step = jnp.asarray(step, jnp.int32)
    idx = sampling.epoch_batch_indices(self.seed, step, self.batch_size, self.num_examples)
    labels = self.phase_labels(step // self.reshuffle_every)
    return {"x": device_data["x"][idx], "y": labels[idx],
            "mask": jnp.ones((self.batch_size,), jnp.float32)}

  def eval_batches(self, batch_size, step=0):
    labels = np.asarray(self.phase_labels(jnp.int32(step // self.reshuffle_every)))
    return padded_batches({"x": self._inputs, "y": labels,
                           "mask": np.ones(self.num_examples, np.float32)}, batch_size)

  def describe(self):
    shape = "x".join(map(str, self.input_shape))
    return (f"{self.name}: {self.num_examples} {self.inputs_kind} inputs ({shape}), "
            f"{self.output_dim} random classes redrawn every {self.reshuffle_every} steps")


def build(config: ml_collections.ConfigDict, batch_size: int) -> RandomLabelsSource:
  return RandomLabelsSource(config, batch_size)
