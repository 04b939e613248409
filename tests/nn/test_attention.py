"""Softmax attention against a hand-written reference; the ATTENTION registry."""
import chex
import jax
import jax.numpy as jnp
import pytest

from paperlab.errors import ConfigError
from paperlab.nn import attention


def _reference(x, p, heads, causal):
  b, t, d = x.shape
  split = lambda y: y.reshape(b, t, heads, d // heads)
  q, k, v = (split(x @ p[name]['kernel']) for name in ('query', 'key', 'value'))
  scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(d // heads)
  if causal:
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
  o = jnp.einsum('bhqk,bkhd->bqhd', jax.nn.softmax(scores, axis=-1), v)
  return o.reshape(b, t, d) @ p['out']['kernel']


@pytest.mark.parametrize('causal', [True, False])
def test_softmax_attention_matches_reference(tiny, causal):
  layer = attention.SoftmaxAttention(8, 2, causal=causal, rngs=tiny.rngs())
  apply, params = tiny.functional(layer)
  x = tiny.normal((2, 6, 8))
  expected = jax.jit(_reference, static_argnums=(2, 3))(x, params, 2, causal)
  chex.assert_trees_all_close(apply(params, x), expected,
                              atol=1e-5, rtol=1e-5)


def test_registry_names_and_errors():
  assert set(attention.ATTENTION) == {'softmax', 'linear', 'delta'}
  assert attention.get_attention('softmax') is attention.SoftmaxAttention
  with pytest.raises(ConfigError, match="unknown attention 'flash'; valid: delta, linear, softmax"):
    attention.get_attention('flash')


def test_lazy_entries_import_on_lookup_and_report_a_missing_module():
  load = attention._lazy('paperlab.nn.no_such_attention', 'Nope')  # nothing imported yet
  with pytest.raises(ConfigError, match='Nope is not available'):
    load()
  assert attention._lazy('paperlab.nn.attention', 'SoftmaxAttention')() is (
      attention.SoftmaxAttention)


def test_check_kwargs_lists_the_valid_keyword_arguments():
  attention.check_kwargs('softmax', attention.SoftmaxAttention, {'causal': False})
  with pytest.raises(ConfigError, match=r'attention_kwargs\.window .*valid: causal, use_bias'):
    attention.check_kwargs('softmax', attention.SoftmaxAttention, {'window': 4})
