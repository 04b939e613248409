"""Annealed Gaussian gradient noise: Neelakantan et al. 2015, "Adding Gradient Noise Improves
Learning for Very Deep Networks" (arXiv 1511.06807).

    g_t <- g_t + N(0, sigma_t^2 I),    sigma_t^2 = eta / (1 + t)^gamma,    t = 0, 1, 2, ...

`eta` is a variance (not a standard deviation; a common bug in ports is to use it as the std).
The noise is absolute, isotropic and the same for every parameter. The paper uses gamma = 0.55 and
eta in {0.01, 0.3, 1.0}.

Place in a chain: after gradient clipping and before the preconditioner/optimizer, e.g.

    optax.chain(optax.clip_by_global_norm(1.0),
                add_gradient_noise(0.01, key=jax.random.key(0)),
                optax.adam(1e-3))

Clipping after the noise would rescale the noise with the gradient (the paper adds noise after
clipping). Placed before Adam or momentum, the noise goes through the preconditioner like the
gradient does, as in the paper.

With constant `eta` and the same key this is exactly `optax.add_noise(eta, gamma, key)` (same key
splits, same samples). Two differences: `eta` may be an optax schedule, and the key is stored as raw
uint32 key data so that the state is a tuple of plain arrays (orbax checkpoints it like any array).
Where `eta` is a schedule, the variance at step t is eta(t) / (1 + t)^gamma; with gamma = 0 the
schedule is the variance itself (our choice; the paper only anneals through gamma).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class GradientNoiseState(NamedTuple):
  count: jax.Array     # int32 [], number of updates so far (t)
  key_data: jax.Array  # uint32, raw data of the PRNG key for the next step


def _key_impl_and_data(key: jax.Array | int):
  if isinstance(key, int):
    key = jax.random.key(key)
  elif not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)  # legacy uint32 PRNGKey
  return jax.random.key_impl(key), jax.random.key_data(key)


def noise_variance(eta: optax.ScalarOrSchedule, gamma, count: jax.Array) -> jax.Array:
  """sigma_t^2 = eta / (1 + t)^gamma at t = `count` (eta evaluated at t when it is a schedule)."""
  eta_t = eta(count) if callable(eta) else eta
  return eta_t / (count + 1).astype(jnp.float32) ** gamma


def add_gradient_noise(eta: optax.ScalarOrSchedule, gamma: float = 0.55, *,
                       key: jax.Array | int) -> optax.GradientTransformation:
  """Adds N(0, eta / (1 + t)^gamma) to every gradient entry; see the module docstring.

  Args:
    eta: the noise variance at t = 0 (a float or an optax schedule of the step).
    gamma: the decay exponent of the variance (paper: 0.55).
    key: a jax PRNG key (typed or legacy uint32) or an int seed.
  """
  impl, key_data = _key_impl_and_data(key)

  def init_fn(params):
    del params
    return GradientNoiseState(count=jnp.zeros([], jnp.int32), key_data=key_data)

  def update_fn(updates, state, params=None):
    del params
    variance = noise_variance(eta, gamma, state.count)
    next_key, sample_key = jax.random.split(jax.random.wrap_key_data(state.key_data, impl=impl))
    noise = optax.tree.random_like(sample_key, target_tree=updates, sampler=jax.random.normal)
    updates = optax.tree.add_scale(tree_x=updates, scalar=jnp.sqrt(variance), tree_y=noise)
    return updates, GradientNoiseState(count=optax.safe_increment(state.count),
                                       key_data=jax.random.key_data(next_key))

  return optax.GradientTransformation(init_fn, update_fn)
