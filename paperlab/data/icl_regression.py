"""`icl_regression`: in-context linear regression, generated on device from (seed, step).

The task of Garg et al., "What Can Transformers Learn In-Context? A Case Study of Simple Function
Classes" (NeurIPS 2022), with optional label noise. Each sequence draws its own weight vector:

  w ~ N(0, I_d),   x_i ~ N(0, I_d),   y_i = w . x_i + noise_std * eps_i,   eps_i ~ N(0, 1),

for i = 1..n (n = num_points). noise_std = 0 is the noiseless task of Garg et al.

Encoding (our choice, as in Garg et al. up to where y sits): 2n continuous tokens of width d+1,
alternating x-tokens and y-tokens,

  token 2i   = [x_i, 0]          (the model sees x_i and predicts y_i here)
  token 2i+1 = [0, ..., 0, y_i]  (y_i is revealed for the following positions)

so a causal model predicts y_i from (x_1, y_1, ..., x_{i-1}, y_{i-1}, x_i). Targets are y_i at the
x-token positions (mask 1) and 0 at the y-token positions (mask 0); the loss is the masked MSE.

Training batch i uses the key fold_in(stream_key(seed, TRAIN), i); the held-out set is num_eval
sequences drawn once from stream_key(seed, EVAL), a different stream.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from paperlab.data import config as config_lib
from paperlab.data import sampling
from paperlab.data.source import Source, padded_batches


def default_config(name: str = "icl_regression") -> ml_collections.ConfigDict:
  return config_lib.base_config(name, dim=8, num_points=16, noise_std=0.1, num_eval=1000)


def generate(key: jax.Array, num_sequences: int, dim: int, num_points: int,
             noise_std: float) -> dict[str, jax.Array]:
  """`num_sequences` regression sequences: {'x': [S, 2n, d+1], 'y': [S, 2n], 'mask': [S, 2n]}."""
  # One normal draw cut into x, w and noise (one threefry call compiles ~3x faster than three).
  d, n = dim, num_points
  z = jax.random.normal(key, (num_sequences, n * d + d + n), jnp.float32)
  xs = z[:, :n * d].reshape(num_sequences, n, d)
  w = z[:, n * d:n * d + d]
  noise = z[:, n * d + d:]
  # Elementwise product and sum, not einsum: a matmul may run at reduced precision on GPU/TPU.
  ys = jnp.sum(xs * w[:, None, :], axis=-1) + noise_std * noise
  zeros_col = jnp.zeros((num_sequences, num_points, 1), jnp.float32)
  x_tokens = jnp.concatenate([xs, zeros_col], axis=-1)
  y_tokens = jnp.concatenate([jnp.zeros_like(xs), ys[..., None]], axis=-1)
  seq_len = 2 * num_points
  tokens = jnp.stack([x_tokens, y_tokens], axis=2).reshape(num_sequences, seq_len, dim + 1)
  targets = jnp.stack([ys, jnp.zeros_like(ys)], axis=2).reshape(num_sequences, seq_len)
  mask = jnp.broadcast_to(jnp.tile(jnp.array([1.0, 0.0], jnp.float32), num_points),
                          (num_sequences, seq_len))
  return {"x": tokens, "y": targets, "mask": mask}


# Shared by all sources, so equal configs compile the held-out set once per process.
_generate_jit = jax.jit(generate, static_argnums=(1, 2, 3))


class ICLRegressionSource(Source):
  """Fresh regression sequences every step, generated inside the jitted train step."""

  task = "regression"
  input_dtype = jnp.float32
  vocab_size = None
  output_dim = 1
  on_device = True
  device_data = None

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int):
    config_lib.require(config.dim >= 1, f"config.data.dim must be >= 1, got {config.dim}")
    config_lib.require(config.num_points >= 1,
                       f"config.data.num_points must be >= 1, got {config.num_points}")
    config_lib.require(config.noise_std >= 0,
                       f"config.data.noise_std must be >= 0, got {config.noise_std}")
    config_lib.require(config.num_eval >= 1,
                       f"config.data.num_eval must be >= 1, got {config.num_eval}")
    super().__init__(config, batch_size)
    self.dim, self.num_points = config.dim, config.num_points
    self.noise_std, self.num_eval = config.noise_std, config.num_eval
    self.input_shape = (2 * self.num_points, self.dim + 1)

  def sample(self, device_data, step):
    del device_data  # a pure generator
    key = jax.random.fold_in(sampling.stream_key(self.seed, sampling.TRAIN), step)
    return generate(key, self.batch_size, self.dim, self.num_points, self.noise_std)

  @functools.cached_property
  def _eval_set(self) -> dict[str, np.ndarray]:
    data = _generate_jit(sampling.stream_key(self.seed, sampling.EVAL), self.num_eval, self.dim,
                self.num_points, self.noise_std)
    return {k: np.asarray(v) for k, v in data.items()}

  def eval_batches(self, batch_size, step=0):
    del step  # the held-out set is fixed
    return padded_batches(self._eval_set, batch_size)

  def describe(self):
    return (f"{self.name}: d={self.dim}, {self.num_points} (x, y) pairs -> "
            f"{2 * self.num_points} tokens of width {self.dim + 1}, noise_std={self.noise_std:g}, "
            f"{self.num_eval} held-out sequences")


def build(config: ml_collections.ConfigDict, batch_size: int) -> ICLRegressionSource:
  return ICLRegressionSource(config, batch_size)
