"""Tests for paperlab/optim/lanton.py (Hao et al. 2025, noise-adaptive layerwise learning rates)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from paperlab.errors import ConfigError
from paperlab.optim import config as optim_config
from paperlab.optim import lanton, lmo, lmo_groups

CONVERGING = [(1.875, -1.25, 0.375)] * 30


def _params():
  k = jax.random.split(jax.random.key(0), 3)
  return {'hidden': {0: {'linear': {'kernel': jax.random.normal(k[0], (6, 6))}},
                     1: {'linear': {'kernel': jax.random.normal(k[1], (6, 6))}}},
          'scale_a': jnp.ones((6,)), 'scale_b': jnp.ones((6,)),
          'head': {'kernel': jax.random.normal(k[2], (6, 6)), 'bias': jnp.zeros((6,))}}


def _grads(params, seed, noise):
  """A fixed signal plus noise; `noise` maps the hidden layer index to its noise std."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  signal = [jnp.cos(jnp.arange(x.size, dtype=jnp.float32)).reshape(x.shape) for x in leaves]
  grads = jax.tree.unflatten(treedef, [s + 0.3 * jax.random.normal(k, s.shape)
                                       for s, k in zip(signal, keys)])
  for i, std in noise.items():
    kernel = grads['hidden'][i]['linear']['kernel']
    grads['hidden'][i]['linear']['kernel'] = (
        jnp.cos(jnp.arange(36.0)).reshape(6, 6)
        + std * jax.random.normal(jax.random.fold_in(keys[0], i), kernel.shape))
  return grads


def test_default_groups():
  groups = lmo_groups(_params())
  assert groups['hidden'][0]['linear']['kernel'] == 'spectral'
  assert groups['head'] == {'kernel': 'sign', 'bias': 'vector'}
  assert groups['scale_a'] == 'vector'
  emb = lmo_groups({'token_embed': {'embedding': jnp.ones((5, 2))}, 'pos_embed': jnp.ones((4, 2)),
                    'patch_embed': {'kernel': jnp.ones((2, 2, 3, 4))}})
  assert emb == {'token_embed': {'embedding': 'sign'}, 'pos_embed': 'sign',
                 'patch_embed': {'kernel': 'spectral'}}


def test_plain_lmo_step_matches_exact_polar_reference():
  """noise_adaptive=False: -lr sqrt(d_out/d_in) U V^T for matrices, -lr * scale * sign(B) else."""
  params = _params()
  grads = _grads(params, 0, {})
  tx = lanton(0.1, noise_adaptive=False, ns_coeffs=CONVERGING, sign_lr_scale=0.5,
              vector_lr_scale=0.25, vector_lmo='rms')
  updates, _ = tx.update(grads, tx.init(params), params)
  g = np.asarray(grads['hidden'][1]['linear']['kernel'], np.float64)
  u, _, vt = np.linalg.svd(g)
  np.testing.assert_allclose(updates['hidden'][1]['linear']['kernel'], -0.1 * u @ vt, atol=1e-4)
  np.testing.assert_allclose(updates['head']['kernel'], -0.05 * np.sign(grads['head']['kernel']),
                             atol=1e-7)
  b = np.asarray(grads['scale_a'])
  np.testing.assert_allclose(updates['scale_a'], -0.025 * b / np.sqrt(np.mean(b ** 2)), rtol=1e-5)


def test_equal_noise_matches_plain_lmo_up_to_a_common_factor():
  """Layers whose residuals have equal dual norms (here G_b = -G_a) get the same rate."""
  params = {'a': jnp.ones((6, 6)), 'b': jnp.ones((6, 6)), 'c': jnp.ones((6,)), 'd': jnp.ones((6,))}
  for rule in ('min', 'mean'):
    adaptive = lanton(0.1, lr_rule=rule, adapt_vectors=True)
    plain = lanton(0.1, noise_adaptive=False)
    s_adaptive, s_plain = adaptive.init(params), plain.init(params)
    step_a, step_p = adaptive.update, plain.update
    for t in range(4):
      x = jax.random.normal(jax.random.key(t), (6, 6))
      v = jax.random.normal(jax.random.key(100 + t), (6,))
      grads = {'a': x, 'b': -x, 'c': v, 'd': -v}
      ua, s_adaptive = step_a(grads, s_adaptive, params)
      up, s_plain = step_p(grads, s_plain, params)
      factors = [np.asarray(ua[k]) / np.asarray(up[k]) for k in 'abcd']
      common = factors[0].flat[0]
      for f in factors:
        np.testing.assert_allclose(f, common, rtol=1e-5)
      np.testing.assert_allclose(common, 1.0, rtol=1e-5)
    assert float(s_adaptive.noise['a']) > 0


@pytest.mark.parametrize('estimator', ['residual', 'two_batch'])
def test_noisier_layer_gets_smaller_learning_rate(estimator):
  params = _params()
  tx = lanton(0.02, estimator=estimator, beta2=0.9)
  state = tx.init(params)

  def step(state, seed):
    if estimator == 'two_batch':
      halves = [_grads(params, 2 * seed + i, {0: 0.2, 1: 0.8}) for i in (0, 1)]
      grads = jax.tree.map(lambda a, b: (a + b) / 2, *halves)
      return tx.update(grads, state, params, microbatch_grads=tuple(halves))[1]
    return tx.update(_grads(params, seed, {0: 0.2, 1: 0.8}), state, params)[1]

  for seed in range(40):
    state = step(state, seed)
  quiet = float(state.lr_scale['hidden'][0]['linear']['kernel'])
  noisy = float(state.lr_scale['hidden'][1]['linear']['kernel'])
  assert quiet == pytest.approx(1.0)          # the least noisy layer takes the group's rate
  assert 0.12 < noisy < 0.45, noisy           # ~ 0.2 / 0.8 = 1/4 of it (the noise std ratio)
  assert float(state.lr_scale['head']['bias']) == 1.0  # vectors are not adapted by default
  assert float(state.noise['head']['bias']) > 0        # but their noise is tracked


def test_noise_every_updates_the_estimate_only_every_k_steps():
  params = {'a': jnp.ones((6, 6)), 'b': jnp.ones((6, 6))}
  tx = lanton(0.1, noise_every=3)
  state = tx.init(params)
  step = tx.update
  history = []
  for t in range(7):
    grads = {'a': jax.random.normal(jax.random.key(t), (6, 6)), 'b': jnp.full((6, 6), 0.1 * t)}
    _, state = step(grads, state, params)
    history.append(float(state.noise['a']))
  # Steps 1..7: the residual estimate exists from step 2; updated at steps 3 and 6 only.
  assert history[0] == history[1] == 0.0
  assert history[2] > 0 and history[3] == history[4] == history[2] and history[5] != history[4]
  assert history[6] == history[5]


def test_weight_decay_is_multiplied_by_the_layer_rate():
  params = {'w': jnp.full((6, 6), 2.0), 'v': jnp.full((6,), 2.0)}
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx = lanton(0.1, weight_decay=0.5, noise_adaptive=False, vector_lr_scale=0.2)
  updates, _ = tx.update(zeros, tx.init(params), params)
  np.testing.assert_allclose(updates['w'], -0.1 * 0.5 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(updates['v'], -0.02 * 0.5 * 2.0, rtol=1e-6)


def test_errors():
  params = {'w': jnp.ones((2, 2))}
  tx = lanton(0.1, estimator='two_batch')
  with pytest.raises(ConfigError, match='microbatch_grads'):
    tx.update(params, tx.init(params), params)
  with pytest.raises(ConfigError, match='estimator'):
    lanton(0.1, estimator='momentum')
  with pytest.raises(ConfigError, match='group'):
    lanton(0.1, groups={'w': 'hidden'}).init(params)


def test_vmap_over_trials_and_schedule():
  params = {'w': jnp.ones((6, 6)), 'v': jnp.ones((6,))}
  tx = lanton(optax.linear_schedule(0.1, 0.0, 10))
  grads = {'w': jax.random.normal(jax.random.key(0), (2, 6, 6)),
           'v': jax.random.normal(jax.random.key(1), (2, 6))}
  states = jax.vmap(lambda _: tx.init(params))(jnp.arange(2))
  batched, _ = jax.jit(jax.vmap(tx.update, in_axes=(0, 0, None)))(grads, states, params)
  update = tx.update
  for i in range(2):
    single, _ = update(jax.tree.map(lambda g: g[i], grads), tx.init(params), params)
    np.testing.assert_allclose(batched['w'][i], single['w'], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(batched['v'][i], single['v'], rtol=1e-6)


def _wide_grads(seed: int, stds: dict[str, float]) -> dict[str, jax.Array]:
  """Two-batch halves for 120x130 kernels (large enough for the Lanczos path): signal + noise."""
  signal = jnp.cos(jnp.arange(120 * 130, dtype=jnp.float32)).reshape(120, 130)
  keys = jax.random.split(jax.random.key(seed), len(stds))
  return {name: signal + std * jax.random.normal(k, signal.shape)
          for (name, std), k in zip(stds.items(), keys)}


@pytest.mark.parametrize('method', ['lanczos', 'newton_schulz', 'exact'])
def test_dual_norm_methods_give_the_spectral_noise_sample(method):
  """Step 1 with two_batch: H = (1 - beta2) (sqrt(d_out/d_in) ||(g1 - g2)/2||_nuc)^2."""
  params = {'w': jnp.zeros((120, 130))}
  g1, g2 = _wide_grads(0, {'w': 1.0}), _wide_grads(1, {'w': 1.0})
  grads = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
  tx = lanton(0.1, estimator='two_batch', beta2=0.9, dual_norm_method=method)
  _, state = tx.update(grads, tx.init(params), params, microbatch_grads=(g1, g2))
  r = np.asarray((g1['w'] - g2['w']) / 2, np.float64)
  exact = np.sqrt(130 / 120) * np.linalg.svd(r, compute_uv=False).sum()
  if method == 'newton_schulz':  # the NS band underestimates, by a reproducible amount
    ns = np.sum(r * np.asarray(lmo.newton_schulz(jnp.asarray(r, jnp.float32)), np.float64))
    np.testing.assert_allclose(state.noise['w'], 0.1 * (np.sqrt(130 / 120) * ns) ** 2, rtol=1e-4)
    assert np.sqrt(float(state.noise['w']) / 0.1) < 0.97 * exact
  else:
    tol = 1e-4 if method == 'exact' else 0.06  # 0.06 on the square: 3 % on the norm
    np.testing.assert_allclose(state.noise['w'], 0.1 * exact ** 2, rtol=tol)


def test_lanczos_gives_the_exact_method_s_rates():
  params = {'quiet': jnp.zeros((120, 130)), 'noisy': jnp.zeros((120, 130))}
  stds = {'quiet': 0.2, 'noisy': 0.8}
  scales = {}
  for method in ('lanczos', 'exact'):
    tx = lanton(0.02, beta2=0.9, dual_norm_method=method)
    step = jax.jit(tx.update)
    state = tx.init(params)
    for seed in range(6):
      _, state = step(_wide_grads(seed, stds), state, params)
    scales[method] = float(state.lr_scale['noisy'])
    assert float(state.lr_scale['quiet']) == 1.0
  assert 0.15 < scales['exact'] < 0.4, scales  # ~ 0.2 / 0.8
  np.testing.assert_allclose(scales['lanczos'], scales['exact'], rtol=0.03)


def test_lanczos_under_vmap_with_noise_every():
  """Probe keys come from the (batched) step count: vmapped trials equal single runs."""
  params = {'w': jnp.zeros((120, 130)), 'v': jnp.zeros((130,))}
  tx = lanton(0.1, noise_every=2)
  grads = [{'w': _wide_grads(t, {'w': 1.0})['w'], 'v': jnp.full((130,), 0.1 * t)}
           for t in range(3)]
  trials = [jax.tree.map(lambda g, i=i: g * (1 + i), grads) for i in range(2)]
  states = jax.vmap(lambda _: tx.init(params))(jnp.arange(2))
  batched_step = jax.jit(jax.vmap(tx.update, in_axes=(0, 0, None)))
  single_step = jax.jit(tx.update)
  singles = [tx.init(params) for _ in range(2)]
  for t in range(3):
    stacked = jax.tree.map(lambda *g: jnp.stack(g), *(trial[t] for trial in trials))
    _, states = batched_step(stacked, states, params)
    singles = [single_step(trial[t], s, params)[1] for trial, s in zip(trials, singles)]
  for i in range(2):
    np.testing.assert_allclose(states.noise['w'][i], singles[i].noise['w'], rtol=1e-4)
  assert float(singles[1].noise['w']) > 0  # estimated at step 2 (residual, noise_every=2)
  np.testing.assert_allclose(states.noise['w'][1], 4 * states.noise['w'][0], rtol=1e-3)


def test_bad_dual_norm_method():
  with pytest.raises(ConfigError, match='lanczos, newton_schulz, exact'):
    lanton(0.1, dual_norm_method='svd')
  cfg = optim_config.default_config()
  cfg.name, cfg.lanton_dual_norm_method = 'lanton', 'power'
  with pytest.raises(ConfigError, match='lanton_dual_norm_method.*lanczos, newton_schulz, exact'):
    optim_config.resolve(cfg)
