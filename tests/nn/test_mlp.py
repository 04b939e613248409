"""The MLP: a hand-written forward (norm before each activation), bias defaults, shapes."""
import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from paperlab.nn import mlp

EPS = 1e-6


def _reference(params, x, norm, depth):
  h = x.reshape(x.shape[0], -1)
  for i in range(depth):
    layer = params['hidden'][i]
    z = h @ layer['linear']['kernel'] + layer['linear'].get('bias', 0.0)
    if norm == 'layernorm':
      p = layer['linear_norm']
      z = (z - z.mean(-1, keepdims=True)) / jnp.sqrt(z.var(-1, keepdims=True) + EPS)
      z = z * p['scale'] + p['bias']
    elif norm == 'rmsnorm':
      z = z / jnp.sqrt((z ** 2).mean(-1, keepdims=True) + EPS) * layer['linear_norm']['scale']
    h = jnp.tanh(z)
  return h @ params['head']['kernel'] + params['head']['bias']


@pytest.mark.parametrize('norm', ['none', 'layernorm', 'rmsnorm'])
def test_forward_matches_reference(tiny, norm):
  model = tiny.build('mlp', norm=norm, activation='tanh')
  apply, params = tiny.functional(model)
  params = tiny.perturbed(params)
  x = tiny.input('mlp')
  expected = jax.jit(_reference, static_argnums=(2, 3))(params, x, norm, 2)
  chex.assert_trees_all_close(apply(params, x), expected, atol=1e-5, rtol=1e-5)


def test_hidden_bias_only_without_a_norm_unless_asked(tiny):
  has_bias = lambda m: m.hidden[0].linear.bias is not None
  assert has_bias(tiny.build('mlp', norm='none'))
  assert not has_bias(tiny.build('mlp', norm='layernorm'))
  assert has_bias(tiny.build('mlp', norm='layernorm', use_bias=True))
  assert tiny.build('mlp', norm='layernorm').head.bias is not None


def test_depth_zero_is_linear_and_its_first_layer_is_the_head(tiny):
  model = tiny.build('mlp', depth=0)
  assert len(model.hidden) == 0
  assert model.tract_spec.kernel_path == ('head', 'kernel')
  x = tiny.input('mlp')
  chex.assert_trees_all_close(model(x), x.reshape(2, -1) @ model.head.kernel[...]
                              + model.head.bias[...], atol=1e-6)


@hypothesis.settings(max_examples=6, deadline=None)
@hypothesis.given(batch=st.integers(1, 3), input_shape=st.lists(st.integers(1, 3), min_size=1,
                                                                max_size=3),
                  depth=st.integers(0, 2))
def test_output_shape_for_any_input_shape(batch, input_shape, depth):
  model = mlp.MLP(tuple(input_shape), 5, depth=depth, width=8, init='zeros',
                  rngs=nnx.Rngs(0))
  out = model(jnp.ones((batch,) + tuple(input_shape)))
  chex.assert_shape(out, (batch, 5))
  assert model.tract_spec.in_features == int(jnp.prod(jnp.array(input_shape)))
