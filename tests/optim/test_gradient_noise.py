"""Tests for paperlab/optim/gradient_noise.py (Neelakantan et al. 2015)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from paperlab.optim import add_gradient_noise, noise_variance


def _run(tx, updates, steps):
  state = tx.init(updates)
  outs = []
  for _ in range(steps):
    out, state = tx.update(updates, state)
    outs.append(out)
  return outs, state


def test_empirical_variance_follows_schedule():
  eta, gamma, n = 0.3, 0.55, 40_000
  zeros = {'w': jnp.zeros((n,))}
  outs, _ = _run(add_gradient_noise(eta, gamma, key=jax.random.key(1)), zeros, 6)
  for t, out in enumerate(outs):
    sample = np.asarray(out['w'])
    expected = eta / (1 + t) ** gamma
    # The sample variance of n Gaussians has relative std sqrt(2 / n) = 0.7%.
    assert abs(sample.var() / expected - 1) < 0.03, (t, sample.var(), expected)
    assert abs(sample.mean()) < 4 * np.sqrt(expected / n)


def test_eta_schedule_variance():
  eta = optax.linear_schedule(1.0, 0.25, transition_steps=3)
  outs, _ = _run(add_gradient_noise(eta, 0.0, key=0), {'w': jnp.zeros((40_000,))}, 4)
  for t, out in enumerate(outs):
    expected = float(eta(t))
    assert abs(float(jnp.var(out['w'])) / expected - 1) < 0.03


def test_equals_optax_add_noise_same_key():
  tree = {'a': jnp.arange(6.0).reshape(2, 3), 'b': {'c': jnp.ones((4,)), 'd': jnp.zeros(())}}
  key = jax.random.key(42)
  ours, _ = _run(add_gradient_noise(0.01, 0.55, key=key), tree, 3)
  theirs, _ = _run(optax.add_noise(0.01, 0.55, key=key), tree, 3)
  for a, b in zip(ours, theirs):
    chex.assert_trees_all_close(a, b, rtol=1e-6, atol=1e-7)


def test_clip_then_noise_keeps_the_noise_scale():
  """After clipping, the noise is added at full scale; clipping after it would shrink it."""
  big = {'w': jnp.full((20_000,), 100.0)}
  noise_only, _ = _run(add_gradient_noise(0.5, key=3), {'w': jnp.zeros((20_000,))}, 1)
  chained, _ = _run(optax.chain(optax.clip_by_global_norm(1.0), add_gradient_noise(0.5, key=3)),
                    big, 1)
  clipped = big['w'] / jnp.linalg.norm(big['w'])
  np.testing.assert_allclose(chained[0]['w'], clipped + noise_only[0]['w'], rtol=1e-5, atol=1e-6)


def test_state_is_plain_arrays_and_counts():
  tx = add_gradient_noise(0.1, key=jax.random.key(0))
  _, state = _run(tx, {'w': jnp.zeros((3,))}, 2)
  assert int(state.count) == 2
  for leaf in jax.tree.leaves(state):
    assert isinstance(leaf, jax.Array)
    assert not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def test_jit_and_vmap_over_trials():
  tx = add_gradient_noise(0.1, key=0)
  grads = {'w': jnp.ones((2, 5))}
  keys = jax.random.split(jax.random.key(7), 2)
  states = jax.vmap(lambda k: tx.init(None)._replace(key_data=jax.random.key_data(k)))(keys)
  batched, _ = jax.jit(jax.vmap(tx.update))(grads, states)
  for i in range(2):
    single = jax.tree.map(lambda x: x[i], states)
    out, _ = tx.update({'w': grads['w'][i]}, single)
    np.testing.assert_allclose(batched['w'][i], out['w'], rtol=1e-6)


@pytest.mark.parametrize('t', [0, 10, 1000])
def test_noise_variance_closed_form(t):
  np.testing.assert_allclose(noise_variance(0.3, 0.55, jnp.int32(t)), 0.3 / (1 + t) ** 0.55,
                             rtol=1e-6)
