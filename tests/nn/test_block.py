"""The pre / post / peri (Peri-LN) formulas, against a hand-written reference transformer."""
import chex
import jax
import jax.numpy as jnp
import pytest

EPS = 1e-6  # paperlab.nn.norms.EPSILON
HEADS = 2


def layernorm(x, p):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + EPS) * p['scale'] + p['bias']


def rmsnorm(x, p):
  return x / jnp.sqrt((x ** 2).mean(-1, keepdims=True) + EPS) * p['scale']


def dense(x, p):
  return x @ p['kernel'] + p.get('bias', 0.0)


def causal_attention(x, p):
  b, t, d = x.shape
  split = lambda y: y.reshape(b, t, HEADS, d // HEADS)
  q, k, v = (split(dense(x, p[name])) for name in ('query', 'key', 'value'))
  scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(d // HEADS)
  scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
  o = jnp.einsum('bhqk,bkhd->bqhd', jax.nn.softmax(scores, axis=-1), v)
  return dense(o.reshape(b, t, d), p['out'])


def feed_forward(x, p):
  return dense(jax.nn.gelu(dense(x, p['fc1'])), p['fc2'])


def reference(params, x, placement, norm, embed_norm):
  """One block, float inputs, no positions; the formulas written out once more."""
  n = layernorm if norm == 'layernorm' else rmsnorm
  h = dense(x, params['input_proj'])
  if embed_norm:
    h = n(h, params['norm_embed'])
  p = params['blocks'][0]
  for f, name in ((causal_attention, 'attention'), (feed_forward, 'mlp')):
    key = 'attn' if name == 'attention' else 'mlp'
    if placement == 'pre':
      h = h + f(n(h, p[f'norm_{key}_in']), p[name])
    elif placement == 'post':
      h = n(h + f(h, p[name]), p[f'norm_{key}_post'])
    else:
      h = h + n(f(n(h, p[f'norm_{key}_in']), p[name]), p[f'norm_{key}_out'])
  if placement != 'post':
    h = n(h, params['norm_final'])
  return dense(h, params['head'])


@pytest.mark.parametrize('placement,norm,embed_norm', [
    ('pre', 'layernorm', False), ('post', 'layernorm', True), ('peri', 'rmsnorm', True)])
def test_block_matches_the_documented_formula(tiny, placement, norm, embed_norm):
  model = tiny.build('transformer_floats', norm_placement=placement, norm=norm,
                     embed_norm=embed_norm, positional='none')
  apply, params = tiny.functional(model)
  params = tiny.perturbed(params)
  x = tiny.input('transformer_floats')
  expected = jax.jit(reference, static_argnums=(2, 3, 4))(params, x, placement, norm, embed_norm)
  chex.assert_trees_all_close(apply(params, x), expected, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize('norm', ['layernorm', 'rmsnorm'])
def test_post_ln_block_outputs_are_normalized(tiny, norm):
  model = tiny.build('transformer_floats', norm_placement='post', norm=norm)
  block = model.blocks[0]
  h = 5.0 * tiny.normal((2, 6, tiny.D)) + 3.0
  y = jax.jit(lambda h: block(h))(h)
  if norm == 'layernorm':  # init scale 1, bias 0: zero mean, unit variance per token
    chex.assert_trees_all_close(y.mean(-1), jnp.zeros((2, 6)), atol=1e-5)
    chex.assert_trees_all_close(y.var(-1), jnp.ones((2, 6)), atol=1e-3)
  else:
    chex.assert_trees_all_close((y ** 2).mean(-1), jnp.ones((2, 6)), atol=1e-3)
  assert model.norm_final is None  # post-LN ends in a norm already
