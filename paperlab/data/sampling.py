"""Deterministic, jittable batch order: batch i is a pure function of (data seed, i).

Random streams. Every random choice a source makes comes from one of a few streams derived from
the data seed, so that streams never collide:

  stream_key(seed, s) = fold_in(key(seed), s)   for s in ORDER, TRAIN, LABELS, EVAL, INPUTS.

Finite datasets are read without replacement within an epoch. Epoch e is the permutation
`permutation(fold_in(stream_key(seed, ORDER), e), N)` of the N training examples, and batch i
takes positions [i*B, (i+1)*B) of the concatenated epoch streams. A batch may straddle an epoch
boundary (and with B > N it spans several epochs); `epoch_batch_indices` handles that inside jit
by building only the few permutations that the batch touches.
"""
import jax
import jax.numpy as jnp

ORDER = 0    # epoch permutations of finite datasets
TRAIN = 1    # generated training batches (synthetic tasks): fold_in(stream, step)
LABELS = 2   # random-label phases: fold_in(stream, phase)
EVAL = 3     # the fixed held-out set of synthetic tasks
INPUTS = 4   # fixed synthetic inputs (e.g. the Gaussian inputs of random_labels)

_INT32_MAX = 2**31 - 1


def stream_key(seed: int, stream: int) -> jax.Array:
  """The base key of one random stream of the data seed."""
  return jax.random.fold_in(jax.random.key(seed), stream)


def epoch_permutation(seed: int, epoch, num_examples: int) -> jax.Array:
  """The order in which epoch `epoch` visits the `num_examples` training examples."""
  return jax.random.permutation(
      jax.random.fold_in(stream_key(seed, ORDER), epoch), num_examples)


def epoch_batch_indices(seed: int, step, batch_size: int, num_examples: int) -> jax.Array:
  """Indices (int32 [batch_size]) of the training examples in batch `step`.

  Pure jnp; `step` may be a traced int32 scalar. The batch's first position is
  step * B = epoch0 * N + offset0; with step = q * N + r this is epoch0 = q * B + (r * B) // N and
  offset0 = (r * B) % N, which stays inside int32 for any step as long as N * B does.
  """
  if num_examples * batch_size > _INT32_MAX:
    raise ValueError(f"num_examples * batch_size = {num_examples * batch_size} exceeds int32; "
                     "on-device sampling is meant for small datasets")
  n, b = num_examples, batch_size
  step = jnp.asarray(step, jnp.int32)
  q, r = jnp.divmod(step, n)
  epoch0 = q * b + (r * b) // n
  offset0 = (r * b) % n
  # Positions offset0 .. offset0 + B - 1 <= N - 1 + B - 1 touch at most B // N + 2 epochs.
  num_epochs = b // n + 2
  epochs = epoch0 + jnp.arange(num_epochs, dtype=jnp.int32)
  perms = jax.vmap(lambda e: epoch_permutation(seed, e, n))(epochs)
  return perms.reshape(-1)[offset0 + jnp.arange(b, dtype=jnp.int32)].astype(jnp.int32)
