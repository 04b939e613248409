"""Tests for paperlab/optim/compose.py and config.py: composition from config, injection, errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import config_dict

from paperlab import optim
from paperlab.errors import ConfigError
from paperlab.optim import paths, tract_gradient

TRACT_PATH = ('hidden', 0, 'linear', 'kernel')


def _params():
  k = jax.random.split(jax.random.key(0), 3)
  layer = lambda key, n, m: {'linear': {'kernel': jax.random.normal(key, (n, m)) / np.sqrt(n)},
                             'linear_norm': {'scale': jnp.ones((m,)), 'bias': jnp.zeros((m,))}}
  # Every matrix 8 x 8 and every vector 8 long: eager ops compile once per shape, so few shapes
  # keep these tests fast.
  return {'hidden': {0: layer(k[0], 8, 8), 1: layer(k[1], 8, 8)},
          'head': {'kernel': jax.random.normal(k[2], (8, 8)) / 3, 'bias': jnp.zeros((8,))}}


def _grads(seed, params=None):
  params = _params() if params is None else params
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


X = jax.random.normal(jax.random.key(9), (10, 8))  # tract_inputs: 10 rows for the 8-input kernel


def _config(**overrides):
  cfg = optim.default_config()
  cfg.update(overrides)
  return cfg


def _run(tx, steps=3, **extra):
  params = _params()
  state = tx.init(params)
  update = tx.update  # eager: the primitives' compiled kernels are shared across tests
  outs = []
  for t in range(steps):
    updates, state = update(_grads(t), state, params, **extra)
    params = optax.apply_updates(params, updates)
    outs.append(updates)
  return outs, state


def test_default_config_fields_are_overridable():
  cfg = optim.default_config()
  for key in cfg.keys():
    ref = cfg.get_ref(key)
    assert cfg[key] is not None or ref.get_type() is not type(None), key
  for key in ('decay_steps', 'clip_norm', 'grad_noise_eta', 'tract_lam', 'muon_adam_lr'):
    assert isinstance(cfg._fields[key], config_dict.FieldReference) and cfg[key] is None


@pytest.mark.parametrize('overrides,match', [
    (dict(name='adam'), "unknown optimizer 'adam'; valid: adamw, lanton, momentum, muon, sgd"),
    (dict(schedule='linear'), 'unknown schedule'),
    (dict(lr=0.0), r'optim.lr=0.0 must be a number > 0'),
    (dict(b2=1.0), 'optim.b2'),
    (dict(nap_norm_params='joint'), 'valid: free, project_joint, frozen'),
    (dict(schedule='cosine', warmup_steps=5), "use schedule='warmup_cosine'"),
    (dict(schedule='cosine'), 'needs optim.decay_steps'),
    (dict(tract_lam=0.1), 'no first-layer kernel path'),
    (dict(lanton_noise_every=0), 'lanton_noise_every'),
])
def test_config_errors(overrides, match):
  with pytest.raises(ConfigError, match=match):
    optim.build(_config(**overrides), _params())


def test_unknown_field_and_bad_paths():
  cfg = optim.default_config().to_dict()
  cfg['learning_rate'] = 0.1
  with pytest.raises(ConfigError, match=r'unknown field\(s\) optim.learning_rate; valid: b1, b2'):
    optim.build(cfg, _params())
  with pytest.raises(ConfigError, match='kernels: head/kernel, hidden/0/linear/kernel'):
    optim.build(_config(tract_lam=0.1), _params(), tract_path=('stem', 'kernel'))
  with pytest.raises(ConfigError, match='normalization'):
    optim.build(_config(nap=True), {'head': {'kernel': jnp.ones((2, 2))}})


def test_adamw_with_schedule_equals_optax():
  cfg = _config(name='adamw', lr=0.01, weight_decay=0.1, schedule='warmup_cosine', warmup_steps=2,
                final_lr_scale=0.1)
  ours, _ = _run(optim.build(cfg, _params(), total_steps=10))
  sched = optax.warmup_cosine_decay_schedule(0.0, 0.01, 2, 10, end_value=0.001)
  theirs, _ = _run(optax.adamw(sched, weight_decay=0.1))
  for a, b in zip(ours, theirs):
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-7)


def test_momentum_and_muon_equal_optax():
  cfg = _config(name='momentum', lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)
  ours, _ = _run(optim.build(cfg, _params()))
  theirs, _ = _run(optax.chain(optax.add_decayed_weights(0.01),
                               optax.sgd(0.1, momentum=0.8, nesterov=True)))
  chex.assert_trees_all_close(ours, theirs, rtol=1e-5, atol=1e-7)

  ours, _ = _run(optim.build(_config(name='muon', lr=0.02), _params()), steps=2)
  dims = {'hidden': {i: {'linear': {'kernel': optax.contrib.MuonDimensionNumbers((0,), 1)},
                         'linear_norm': {'scale': None, 'bias': None}} for i in (0, 1)},
          'head': {'kernel': None, 'bias': None}}  # embeddings, head and vectors go to Adam
  theirs, _ = _run(optax.contrib.muon(0.02, muon_weight_dimension_numbers=dims), steps=2)
  chex.assert_trees_all_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_chain_order_clip_noise_tract_then_optimizer():
  cfg = _config(name='sgd', lr=0.5, clip_norm=1.0, grad_noise_eta=0.01, tract_lam=0.2)
  rng = jax.random.key(5)
  tx = optim.build(cfg, _params(), rng=rng, tract_path=TRACT_PATH)
  params, grads = _params(), _grads(0)
  updates, _ = tx.update(grads, tx.init(params), params, tract_inputs=X)
  clipped, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  noise = optim.add_gradient_noise(0.01, 0.55, key=rng)
  noisy, _ = noise.update(clipped, noise.init(params))
  expected = jax.tree.map(lambda g: -0.5 * g, noisy)
  expected['hidden'][0]['linear']['kernel'] = -0.5 * tract_gradient(
      noisy['hidden'][0]['linear']['kernel'], X, 0.2)
  chex.assert_trees_all_close(updates, expected, rtol=1e-5, atol=1e-6)


def test_nap_comes_after_the_schedule():
  cfg = _config(name='adamw', lr=0.3, nap=True, schedule='cosine', decay_steps=5)
  _, state = _run(optim.build(cfg, _params()), steps=1)
  params = _params()
  tx = optim.build(cfg, params)
  state = tx.init(params)
  for t in range(4):
    updates, state = tx.update(_grads(t), state, params)
    params = optax.apply_updates(params, updates)
  for i in (0, 1):
    np.testing.assert_allclose(jnp.linalg.norm(params['hidden'][i]['linear']['kernel']),
                               jnp.linalg.norm(_params()['hidden'][i]['linear']['kernel']),
                               rtol=1e-5)


ALL_ON = dict(clip_norm=5.0, grad_noise_eta=1e-4, tract_lam=0.1, nap=True,
              schedule='warmup_cosine', warmup_steps=1, decay_steps=6)
CHANGED = dict(lr=0.03, weight_decay=0.05, momentum=0.5, b1=0.8, b2=0.99, eps=1e-6,
               clip_norm=2.0, grad_noise_eta=2e-4, grad_noise_gamma=0.3, tract_lam=0.5,
               final_lr_scale=0.2, muon_beta=0.9, lanton_beta1=0.9, lanton_beta2=0.95,
               lanton_sign_lr_scale=0.3, lanton_vector_lr_scale=0.2)


# sgd's and momentum's fields are covered by the vmap test below (lr, momentum).
@pytest.mark.parametrize('name', ['adamw', 'muon', 'lanton'])
def test_injected_hyperparams_equal_baked_in(name):
  base = _config(name=name, **ALL_ON)
  fields = optim.injected_fields(base)
  changed = {k: v for k, v in CHANGED.items() if k in fields}
  assert set(changed) == set(fields)
  tx_baked = optim.build(_config(name=name, **{**ALL_ON, **changed}), _params(),
                         tract_path=TRACT_PATH)
  tx_injected = optim.build(base, _params(), tract_path=TRACT_PATH, inject_hyperparams=True)
  params = _params()
  s_baked = tx_baked.init(params)
  s_injected = optim.set_hyperparams(tx_injected.init(params), **changed)
  for key, value in optim.get_hyperparams(s_injected).items():
    assert value.dtype == jnp.float32 and float(value) == pytest.approx(changed[key])
  for t in range(2):
    ub, s_baked = tx_baked.update(_grads(t), s_baked, params, tract_inputs=X)
    ui, s_injected = tx_injected.update(_grads(t), s_injected, params, tract_inputs=X)
    chex.assert_trees_all_close(ub, ui, rtol=2e-5, atol=1e-7)
    params = optax.apply_updates(params, ub)


def test_vmap_over_stacked_states_with_two_learning_rates():
  cfg = _config(name='momentum', tract_lam=0.1, schedule='warmup_cosine', warmup_steps=1,
                decay_steps=4)
  params = _params()
  tx = optim.build(cfg, params, tract_path=TRACT_PATH, inject_hyperparams=True)
  stacked = jax.vmap(lambda _: tx.init(params))(jnp.arange(2))
  stacked = optim.set_hyperparams(stacked, lr=jnp.array([0.1, 0.01]), momentum=0.5)
  stacked_params = jax.tree.map(lambda p: jnp.stack([p, p]), params)

  @jax.jit
  def step(state, params, grads):
    updates, state = jax.vmap(lambda s, p: tx.update(grads, s, p, tract_inputs=X))(state, params)
    return state, optax.apply_updates(params, updates)

  for t in range(3):
    stacked, stacked_params = step(stacked, stacked_params, _grads(t))
  for i, lr in enumerate((0.1, 0.01)):
    single = optim.build(_config(**{**cfg.to_dict(), 'lr': lr, 'momentum': 0.5}), params,
                         tract_path=TRACT_PATH)
    state, p = single.init(params), params
    for t in range(3):
      updates, state = single.update(_grads(t), state, p, tract_inputs=X)
      p = optax.apply_updates(p, updates)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], stacked_params), p, rtol=1e-5,
                                atol=1e-6)
  lrs = optim.current_lr(cfg, stacked, jnp.int32(2))  # step 2 of a 1-step warmup, 4-step cosine
  shape = optax.warmup_cosine_decay_schedule(0.0, 1.0, 1, 4)(2)
  np.testing.assert_allclose(lrs, np.array([0.1, 0.01]) * shape, rtol=1e-6)


def test_hyperparam_access_errors():
  tx = optim.build(_config(), _params())
  with pytest.raises(ConfigError, match='inject_hyperparams=True'):
    optim.get_hyperparams(tx.init(_params()))
  tx = optim.build(_config(), _params(), inject_hyperparams=True)
  with pytest.raises(ConfigError, match='injected: b1, b2, eps, lr, weight_decay'):
    optim.set_hyperparams(tx.init(_params()), momentum=0.5)


def test_extra_args_and_learning_rate_fn():
  assert optim.extra_args_needed(_config()) == set()
  assert optim.extra_args_needed(_config(tract_lam=0.1)) == {'tract_inputs'}
  assert optim.extra_args_needed(_config(name='lanton', lanton_estimator='two_batch')) == {
      'microbatch_grads'}
  fn = optim.learning_rate_fn(_config(lr=0.2, schedule='warmup_cosine', warmup_steps=3), 20)
  steps = jnp.arange(25)
  np.testing.assert_allclose(fn(steps), optax.warmup_cosine_decay_schedule(0, 0.2, 3, 20)(steps),
                             atol=1e-7)
  np.testing.assert_allclose(optim.current_lr(_config(lr=0.2), optax.EmptyState(), 7), 0.2)


def test_lanton_two_batch_through_build():
  cfg = _config(name='lanton', lanton_estimator='two_batch', lr=0.02)
  params = _params()
  tx = optim.build(cfg, params)
  halves = (_grads(1), _grads(2))
  grads = jax.tree.map(lambda a, b: (a + b) / 2, *halves)
  _, state = tx.update(grads, tx.init(params), params, microbatch_grads=halves)
  lanton_state = state[0]
  assert float(lanton_state.noise['hidden'][0]['linear']['kernel']) > 0


def test_state_is_plain_arrays_and_round_trips_by_leaves():
  """What a checkpointer needs: numeric array leaves, restorable into a fresh state's structure."""
  params = _params()
  tx = optim.build(_config(name='lanton', **ALL_ON), params, tract_path=TRACT_PATH,
                   inject_hyperparams=True)
  _, state = tx.update(_grads(0), tx.init(params), params, tract_inputs=X)
  leaves = jax.tree.leaves(state)
  for leaf in leaves:
    assert isinstance(leaf, jax.Array) and not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
  saved = [np.asarray(x) for x in leaves]
  restored = jax.tree.unflatten(jax.tree.structure(tx.init(params)), saved)
  chex.assert_trees_all_equal(restored, state)


def test_leaf_at_and_with_leaf_round_trip():
  tree = {'hidden': {0: {'linear': {'kernel': 1, 'bias': 2}}}, 'head': {'kernel': 3}}
  path = ('hidden', 0, 'linear', 'kernel')
  assert paths.leaf_at(tree, path) == 1
  new = paths.with_leaf(tree, path, 9)
  assert paths.leaf_at(new, path) == 9 and tree['hidden'][0]['linear']['kernel'] == 1  # a copy
  assert new['hidden'][0]['linear']['bias'] == 2 and new['head'] is tree['head']
