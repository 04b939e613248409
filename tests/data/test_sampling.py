"""Tests for paperlab/data/sampling.py: epoch-wise sampling without replacement, inside jit."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.data import sampling


@functools.cache
def reference_permutation(seed, epoch, num_examples):
  base = jax.random.fold_in(jax.random.key(seed), 0)  # the ORDER stream
  return np.asarray(jax.random.permutation(jax.random.fold_in(base, epoch), num_examples))


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
