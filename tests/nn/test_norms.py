"""The NaP naming convention, and the scale invariance it promises.

A norm named `<x>_norm` directly follows the layer `<x>` in the same module, so NaP
(Lyle et al. 2024) may treat `<x>.kernel` as scale invariant: multiplying it by c > 0 leaves the
network function unchanged. Every other norm is named `norm_<where>`.
"""
import chex
import jax
import pytest

from paperlab.nn import norms

MODELS = {
    'mlp_layernorm': ('mlp', dict(norm='layernorm')),
    'mlp_rmsnorm': ('mlp', dict(norm='rmsnorm')),
    'cnn_groupnorm': ('cnn', dict(norm='groupnorm')),
    'cnn_layernorm': ('cnn', dict(norm='layernorm')),
    'vit': ('vit', dict(norm_placement='peri')),
    'transformer': ('transformer_floats', dict(norm_placement='peri', embed_norm=True)),
}
EXPECTED_PAIRS = {  # at least these `<x>_norm` names, so the checks below are not vacuous
    'mlp_layernorm': 2, 'mlp_rmsnorm': 2, 'cnn_groupnorm': 6, 'cnn_layernorm': 6,
    'vit': 0, 'transformer': 0,
}


def _modules(tree, path=()):
  """(path, dict) for every module dict in a pure param dict."""
  if isinstance(tree, dict):
    yield path, tree
    for key, sub in tree.items():
      yield from _modules(sub, path + (key,))


def _is_norm(node):
  return isinstance(node, dict) and 'scale' in node and 'kernel' not in node


def _norm_pairs(params):
  """(path of `<x>`, path of `<x>_norm`) for every norm named by the convention."""
  pairs = []
  for path, node in _modules(params):
    for key, sub in node.items():
      if isinstance(key, str) and key.endswith('_norm') and _is_norm(sub):
        pairs.append((path + (key[:-len('_norm')],), path + (key,)))
  return pairs


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


@pytest.mark.parametrize('case', sorted(MODELS))
def test_every_norm_follows_the_naming_convention(tiny, case):
  key, overrides = MODELS[case]
  _, params = tiny.functional(tiny.build(key, **overrides))
  pairs = _norm_pairs(params)
  assert len(pairs) >= EXPECTED_PAIRS[case]
  for layer_path, norm_path in pairs:
    layer = _get(params, layer_path[:-1]).get(layer_path[-1])
    assert isinstance(layer, dict) and 'kernel' in layer, f'{norm_path} has no sibling kernel'
  named = {p for _, p in pairs}
  for path, node in _modules(params):
    if _is_norm(node) and path not in named:
      assert str(path[-1]).startswith('norm_'), f'norm at {path} is neither <x>_norm nor norm_*'


@pytest.mark.parametrize('case', ['mlp_layernorm', 'mlp_rmsnorm', 'cnn_groupnorm',
                                  'cnn_layernorm'])
def test_kernels_feeding_a_named_norm_are_scale_invariant(tiny, case):
  key, overrides = MODELS[case]
  apply, params = tiny.functional(tiny.build(key, **overrides))
  x = tiny.input(key)
  reference = apply(params, x)
  pairs = _norm_pairs(params)

  def scaled(layer_path, c):
    out = jax.tree.map(lambda a: a, params)  # copy of the nested dicts
    layer = _get(out, layer_path)
    layer['kernel'] = c * layer['kernel']
    return out

  for layer_path, _ in pairs:
    chex.assert_trees_all_close(apply(scaled(layer_path, 3.0), x), reference, atol=1e-4,
                                rtol=1e-4)
  # The check can fail: scaling the head kernel, which feeds no norm, changes the output.
  assert abs(apply(scaled(('head',), 3.0), x) - reference).max() > 1e-3


def test_make_norm_kinds(tiny):
  assert norms.make_norm('none', 4, rngs=tiny.rngs()) is None
  assert set(norms.NORMS) == {'none', 'layernorm', 'rmsnorm', 'groupnorm'}
  assert 'bias' not in vars(norms.make_norm('rmsnorm', 4, rngs=tiny.rngs()))
