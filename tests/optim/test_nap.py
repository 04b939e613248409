"""Tests for paperlab/optim/nap.py (Lyle et al. 2024, Normalize-and-Project)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from paperlab.errors import ConfigError
from paperlab.optim import effective_learning_rates, feeds_norm_mask, nap_projection


def _params(bias: bool = False):
  """paperlab.nn layout: hidden.<i>.linear feeds hidden.<i>.linear_norm; the head feeds nothing."""
  keys = jax.random.split(jax.random.key(0), 4)
  layer = lambda k, n, m: {
      'linear': {'kernel': jax.random.normal(k, (n, m)) / np.sqrt(n),
                 **({'bias': jnp.linspace(-0.5, 0.8, m)} if bias else {})},
      'linear_norm': {'scale': jnp.ones((m,)), 'bias': jnp.zeros((m,))}}
  return {'hidden': {0: layer(keys[0], 8, 8), 1: layer(keys[1], 8, 8)},
          'norm_final': {'scale': jnp.ones((8,))},
          'head': {'kernel': jax.random.normal(keys[2], (8, 8)), 'bias': jnp.zeros((8,))}}


def _layer_norm(z, scale, bias):
  mean = z.mean(-1, keepdims=True)
  var = z.var(-1, keepdims=True)
  return (z - mean) / jnp.sqrt(var + 1e-12) * scale + bias


def _forward(params, x):
  h = x
  for i in (0, 1):
    lin, norm = params['hidden'][i]['linear'], params['hidden'][i]['linear_norm']
    z = h @ lin['kernel'] + lin.get('bias', 0.0)
    h = jax.nn.relu(_layer_norm(z, norm['scale'], norm['bias']))
  return h @ params['head']['kernel'] + params['head']['bias']


def _norm(x):
  return float(jnp.sqrt(sum(jnp.sum(jnp.square(v)) for v in jax.tree.leaves(x))))


def _random_updates(params, seed, scale=0.5):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [scale * jax.random.normal(k, x.shape)
                                      for k, x in zip(keys, leaves)])


def test_default_mask_pairs_layer_and_sibling_norm():
  mask = feeds_norm_mask(_params(bias=True))
  assert mask['hidden'][0]['linear'] == {'kernel': True, 'bias': False}
  assert mask['hidden'][1]['linear']['kernel']
  assert not any(jax.tree.leaves(mask['hidden'][0]['linear_norm']))
  assert not mask['head']['kernel'] and not mask['norm_final']['scale']


def test_norms_stay_at_init_over_many_steps():
  params = _params()
  tx = optax.chain(optax.adam(0.1), nap_projection())
  state = tx.init(params)
  step = jax.jit(tx.update)
  head_before = params['head']['kernel']
  for i in range(30):
    updates, state = step(_random_updates(params, i), state, params)
    params = optax.apply_updates(params, updates)
  init = _params()
  for i in (0, 1):
    np.testing.assert_allclose(_norm(params['hidden'][i]['linear']['kernel']),
                               _norm(init['hidden'][i]['linear']['kernel']), rtol=1e-5)
  assert not np.allclose(params['head']['kernel'], head_before)  # the head trains freely
  assert _norm(params['hidden'][0]['linear_norm']) != pytest.approx(_norm(
      init['hidden'][0]['linear_norm']), rel=1e-3)  # norm_params='free'


@pytest.mark.parametrize('bias', [False, True])
def test_projection_leaves_the_network_function_unchanged(bias):
  params = _params(bias=bias)
  x = jax.random.normal(jax.random.key(1), (16, 8))
  # Updates that only touch the normalized layers (the head and norms get zero updates).
  updates = _random_updates(params, 2)
  for i in (0, 1):
    updates['hidden'][i]['linear_norm'] = jax.tree.map(jnp.zeros_like,
                                                      updates['hidden'][i]['linear_norm'])
  updates['head'] = jax.tree.map(jnp.zeros_like, updates['head'])
  updates['norm_final'] = jax.tree.map(jnp.zeros_like, updates['norm_final'])
  tx = nap_projection()  # bias='joint'
  projected, _ = tx.update(updates, tx.init(params), params)
  stepped = optax.apply_updates(params, updates)
  after = optax.apply_updates(params, projected)
  np.testing.assert_allclose(_forward(after, x), _forward(stepped, x), rtol=2e-4, atol=2e-5)
  # The kernel norm really changed under the raw step and was restored by the projection.
  k = lambda p: p['hidden'][0]['linear']
  assert abs(_norm(k(stepped)) - _norm(k(params))) > 1e-2
  np.testing.assert_allclose(_norm(k(after)), _norm(k(params)), rtol=1e-5)


def test_kernel_only_projection_changes_function_when_layer_has_bias():
  """Why bias='joint' is the default: LN(x W + b) is invariant to (cW, cb), not to cW alone."""
  params = _params(bias=True)
  x = jax.random.normal(jax.random.key(1), (16, 8))
  updates = jax.tree.map(jnp.zeros_like, params)
  updates['hidden'][0]['linear'] = params['hidden'][0]['linear']  # (W, b) -> (2W, 2b)
  stepped = optax.apply_updates(params, updates)
  np.testing.assert_allclose(_forward(stepped, x), _forward(params, x), rtol=2e-4, atol=2e-5)
  for bias, changes in (('free', True), ('joint', False)):
    tx = nap_projection(bias=bias)
    projected, _ = tx.update(updates, tx.init(params), params)
    diff = np.abs(_forward(optax.apply_updates(params, projected), x) - _forward(params, x)).max()
    assert (diff > 1e-3) == changes, (bias, diff)


def test_masked_out_leaves_are_untouched():
  params = _params(bias=True)
  updates = _random_updates(params, 3)
  mask = jax.tree.map(lambda _: False, params)
  mask['hidden'][1]['linear']['kernel'] = True
  tx = nap_projection(mask=mask, bias='free')
  projected, _ = tx.update(updates, tx.init(params), params)
  for path in [('hidden', 0, 'linear', 'kernel'), ('hidden', 1, 'linear', 'bias'),
               ('head', 'kernel'), ('hidden', 1, 'linear_norm', 'scale')]:
    get = lambda t: t[path[0]][path[1]][path[2]][path[3]] if len(path) == 4 else t[path[0]][path[1]]
    np.testing.assert_array_equal(get(projected), get(updates))
  assert not np.allclose(projected['hidden'][1]['linear']['kernel'],
                         updates['hidden'][1]['linear']['kernel'])


def test_norm_params_options():
  params = _params()
  updates = _random_updates(params, 4)
  frozen, _ = nap_projection(norm_params='frozen').update(
      updates, nap_projection(norm_params='frozen').init(params), params)
  for i in (0, 1):
    for leaf in jax.tree.leaves(frozen['hidden'][i]['linear_norm']):
      np.testing.assert_array_equal(leaf, 0.0)
  np.testing.assert_array_equal(frozen['norm_final']['scale'], updates['norm_final']['scale'])

  tx = nap_projection(norm_params='project_joint')
  joint, _ = tx.update(updates, tx.init(params), params)
  after = optax.apply_updates(params, joint)
  for i in (0, 1):  # (scale, offset) back to its initial joint norm sqrt(d) = sqrt(8)
    np.testing.assert_allclose(_norm(after['hidden'][i]['linear_norm']), np.sqrt(8), rtol=1e-5)
  free, _ = nap_projection().update(updates, nap_projection().init(params), params)
  np.testing.assert_array_equal(free['hidden'][0]['linear_norm']['scale'],
                                updates['hidden'][0]['linear_norm']['scale'])


def test_effective_learning_rates_closed_form():
  params = _params()
  elr = effective_learning_rates(params, 0.1)
  assert set(elr) == {'hidden/0/linear/kernel', 'hidden/1/linear/kernel'}
  w = params['hidden'][1]['linear']['kernel']
  np.testing.assert_allclose(elr['hidden/1/linear/kernel'], 0.1 / np.sum(np.square(w)), rtol=1e-5)
  adam = effective_learning_rates(params, 0.1, scale_free=True)
  np.testing.assert_allclose(adam['hidden/1/linear/kernel'], 0.1 / np.linalg.norm(w), rtol=1e-5)


def test_errors():
  params = _params()
  tx = nap_projection()
  with pytest.raises(ValueError, match='needs the parameters'):
    tx.update(params, tx.init(params), None)
  with pytest.raises(ConfigError, match='no parameter to project'):
    nap_projection().init({'head': {'kernel': jnp.ones((2, 2))}})
  with pytest.raises(ConfigError, match='norm_params'):
    nap_projection(norm_params='joint')


def test_vmap_over_trials():
  params = _params()
  tx = nap_projection()
  stacked_params = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), params)
  states = jax.vmap(tx.init)(stacked_params)
  updates = jax.tree.map(lambda x: jnp.stack([x, x]), _random_updates(params, 5))
  out, _ = jax.vmap(tx.update)(updates, states, stacked_params)
  after = optax.apply_updates(stacked_params, out)
  for t, factor in enumerate((1.0, 2.0)):
    np.testing.assert_allclose(_norm(after['hidden'][1]['linear']['kernel'][t]),
                               factor * _norm(params['hidden'][1]['linear']['kernel']), rtol=1e-5)
