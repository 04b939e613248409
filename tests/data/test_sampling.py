"""Tests for paperlab/data/sampling.py: epoch-wise sampling without replacement, inside jit."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.data import sampling


def _lowbias32(x):
  x ^= x >> 16
  x = (x * 0x7FEB352D) & 0xFFFFFFFF
  x ^= x >> 15
  x = (x * 0x846CA68B) & 0xFFFFFFFF
  return x ^ (x >> 16)


@functools.cache
def reference_permutation(seed, epoch, num_examples):
  """The documented permutation written out with Python ints: a 4-round Feistel network on
  [0, 2^(2h)), 2^(2h) >= N, keyed by 4 words of the epoch's ORDER-stream key, with cycle walking."""
  base = jax.random.fold_in(jax.random.key(seed), 0)  # the ORDER stream
  keys = [int(k) for k in np.asarray(jax.random.bits(jax.random.fold_in(base, epoch), (4,), jnp.uint32))]
  half = max(1, (max(num_examples - 1, 1).bit_length() + 1) // 2)
  mask = (1 << half) - 1

  def encrypt(x):
    left, right = x >> half, x & mask
    for k in keys:
      left, right = right, left ^ (_lowbias32(right ^ k) & mask)
    return (left << half) | right

  out = []
  for position in range(num_examples):
    x = encrypt(position)
    while x >= num_examples:
      x = encrypt(x)
    out.append(x)
  return np.array(out)


def reference_indices(seed, step, batch_size, num_examples):
  """The spec written out with Python ints: concatenate epoch permutations, take a window."""
  out = []
  for position in range(step * batch_size, (step + 1) * batch_size):
    epoch, offset = divmod(position, num_examples)
    out.append(reference_permutation(seed, epoch, num_examples)[offset])
  return np.array(out)


@functools.cache
def compiled(batch_size, num_examples):
  # The seed is traced here (sources pass a Python int), so all seeds share one compile.
  return jax.jit(lambda seed, step: sampling.epoch_batch_indices(seed, step, batch_size,
                                                                 num_examples))


def jitted(seed, batch_size, num_examples):
  return functools.partial(compiled(batch_size, num_examples), jnp.int32(seed))


@pytest.mark.parametrize("num_examples,batch_size", [(10, 3), (5, 12)])
def test_matches_reference_across_epoch_boundaries(num_examples, batch_size):
  fn = jitted(0, batch_size, num_examples)
  for step in range(8):
    np.testing.assert_array_equal(fn(jnp.int32(step)),
                                  reference_indices(0, step, batch_size, num_examples))


def test_one_epoch_covers_every_example_exactly_once():
  num, batch = 10, 3
  fn = jitted(0, batch, num)
  stream = np.concatenate([np.asarray(fn(jnp.int32(s))) for s in range(10)])  # 30 positions
  for epoch in range(3):
    np.testing.assert_array_equal(np.sort(stream[epoch * num:(epoch + 1) * num]), np.arange(num))
  # Consecutive epochs use different orders.
  assert not np.array_equal(stream[:num], stream[num:2 * num])


@pytest.mark.parametrize("num_examples", [1, 2, 7, 64, 1437])
def test_epoch_permutation_is_a_permutation(num_examples):
  perm = np.asarray(jax.jit(sampling.epoch_permutation, static_argnums=2)(3, 5, num_examples))
  np.testing.assert_array_equal(np.sort(perm), np.arange(num_examples))
  np.testing.assert_array_equal(perm, reference_permutation(3, 5, num_examples))


def test_shuffle_is_uniform():
  """Over many epochs each example lands at each position about equally often (chi-square), and
  neighbours in the order are uncorrelated, as for a uniformly random permutation."""
  num, epochs = 16, 4000
  perms = np.asarray(jax.jit(jax.vmap(lambda e: sampling.epoch_permutation(0, e, num)))(jnp.arange(epochs)))
  counts = np.zeros((num, num))
  for perm in perms:
    counts[np.arange(num), perm] += 1
  expected = epochs / num
  chi2 = ((counts - expected) ** 2 / expected).sum()
  dof = (num - 1) ** 2
  assert chi2 < dof + 5 * np.sqrt(2 * dof), chi2  # ~5 sigma above the mean of chi-square(dof)
  corr = np.corrcoef(perms[:, :-1].ravel(), perms[:, 1:].ravel())[0, 1]
  assert abs(corr + 1 / (num - 1)) < 0.02, corr  # E[corr] = -1/(N-1) for a uniform permutation


def test_seed_changes_order():
  first_epoch = [np.asarray(jitted(seed, 3, 10)(jnp.int32(s))) for seed in (0, 1) for s in range(3)]
  assert not np.array_equal(np.concatenate(first_epoch[:3]), np.concatenate(first_epoch[3:]))


def test_huge_step_does_not_overflow_int32():
  # step * B overflows int32, the q/r decomposition must not.
  step, batch, num = 2**31 - 1, 3, 10
  got = np.asarray(jitted(0, batch, num)(jnp.int32(step)))
  np.testing.assert_array_equal(got, reference_indices(0, step, batch, num))


@settings(max_examples=25, deadline=None)
@given(step=st.integers(0, 10_000))
def test_step_sweep_against_reference(step):
  got = np.asarray(jitted(0, 3, 10)(jnp.int32(step)))
  assert got.dtype == np.int32 and got.shape == (3,)
  np.testing.assert_array_equal(got, reference_indices(0, step, 3, 10))


def test_rejects_sizes_beyond_int32():
  with pytest.raises(ValueError, match="int32"):
    sampling.epoch_batch_indices(0, 0, 2**16, 2**16)
