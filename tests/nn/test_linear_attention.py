"""LinearAttention: a hand-written quadratic-form reference, causality, gradients, options, and the
transformer with attention='linear'."""
import math
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paperlab import config as config_lib
from paperlab import train
from paperlab.errors import ConfigError
from paperlab.kernels import alibi_slopes
from paperlab.nn.linear_attention import LinearAttention

D, H, T = 12, 3, 20           # head_dim 4; T = 20 spans two chunks of 16


def _reference(x, p, decay, feature_map, gate, conv):
  """Attention-matrix form in float64: o_t = scale * sum_{s<=t} lambda^(t-s) (q_t . k_s) v_s."""
  x = np.asarray(x, np.float64)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
  phi = {'silu': lambda z: z / (1 + np.exp(-z)), 'identity': lambda z: z,
         'elu_plus_one': lambda z: np.where(z > 0, z + 1, np.exp(z))}[feature_map]
  b, t, d = x.shape

  def project(name):                     # causal depthwise conv: sum_j w[j] y_{t + j - (K-1)}
    y = x @ p[name]['kernel']
    if not conv:
      return y
    w = p[f'{name}_conv']['kernel']
    padded = np.pad(y, ((0, 0), (w.shape[0] - 1, 0), (0, 0)))
    return sum(w[j] * padded[:, j:j + t] for j in range(w.shape[0]))

  split = lambda y: y.reshape(b, t, H, d // H)
  q, k, v = split(phi(project('query'))), split(phi(project('key'))), split(project('value'))
  slopes = {'alibi': np.asarray(alibi_slopes(H), np.float64), 'none': np.zeros(H),
            'learned': np.exp(p['log_slopes']) if 'log_slopes' in p else None}[decay]
  lag = np.arange(t)[:, None] - np.arange(t)[None, :]
  weights = np.where(lag >= 0, np.exp(-slopes[:, None, None] * np.maximum(lag, 0)), 0.0)
  scores = np.einsum('bqhd,bkhd->bhqk', q, k) * weights * (d // H) ** -0.5
  o = np.einsum('bhqk,bkhd->bqhd', scores, v).reshape(b, t, d)
  y = o / np.sqrt(np.mean(o ** 2, -1, keepdims=True) + 1e-6) * p['norm_output']['scale']
  if gate:
    y = y / (1 + np.exp(-(x @ p['gate']['kernel'])))
  return y @ p['out']['kernel']


@pytest.mark.parametrize('decay,feature_map,gate,conv', [('alibi', 'silu', True, False),
                                                         ('learned', 'elu_plus_one', False, True),
                                                         ('none', 'identity', True, False)])
def test_matches_quadratic_reference(tiny, decay, feature_map, gate, conv):
  layer = LinearAttention(D, H, decay=decay, feature_map=feature_map, output_gate=gate,
                          use_short_conv=conv, chunk_size=16, rngs=tiny.rngs())
  apply, params = tiny.functional(layer)
  params = tiny.perturbed(params)
  x = tiny.normal((2, T, D))
  np.testing.assert_allclose(apply(params, x),
                             _reference(x, params, decay, feature_map, gate, conv),
                             rtol=2e-4, atol=2e-5)


def test_causal_and_differentiable(tiny):
  layer = LinearAttention(D, H, decay='learned', chunk_size=16, rngs=tiny.rngs())
  apply, params = tiny.functional(layer)
  x = tiny.normal((2, T, D))
  changed = x.at[:, 9:].add(1.0)
  out, out_changed = apply(params, x), apply(params, changed)
  chex.assert_trees_all_close(out[:, :9], out_changed[:, :9], atol=1e-6, rtol=1e-6)
  assert jnp.abs(out[:, 9:] - out_changed[:, 9:]).max() > 1e-3
  grads = jax.jit(jax.grad(lambda p: jnp.sum(apply(p, x) ** 2)))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert jnp.all(jnp.isfinite(g)) and jnp.any(g != 0), path   # log_slopes included


def test_impls_agree(tiny):
  x = tiny.normal((1, T, D))
  outs = [tiny.functional(LinearAttention(D, H, impl=impl, chunk_size=16, rngs=tiny.rngs()))
          for impl in ('reference', 'xla')]
  (a, pa), (b, pb) = outs
  np.testing.assert_allclose(a(pa, x), b(pb, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kwargs,message', [
    (dict(decay='exp'), "unknown linear attention decay 'exp'; valid: alibi, learned, none"),
    (dict(feature_map='relu'), "unknown linear attention feature_map 'relu'"),
    (dict(chunk_size=48), r'chunk_size must be one of \(16, 32, 64, 128\), got 48'),
    (dict(impl='cuda'), "unknown attention impl 'cuda'; valid: auto, pallas, reference, xla"),
])
def test_bad_options_raise_config_error(tiny, kwargs, message):
  with pytest.raises(ConfigError, match=message):
    LinearAttention(D, H, rngs=tiny.rngs(), **kwargs)
  with pytest.raises(ConfigError, match='d_model=12 must be divisible by num_heads=5'):
    LinearAttention(D, 5, rngs=tiny.rngs())


def test_inside_the_transformer(tiny):
  model = tiny.build('transformer_tokens', attention='linear',
                     attention_kwargs=dict(chunk_size=16, decay='learned'))
  apply, params = tiny.functional(model)
  x = tiny.input('transformer_tokens')
  out = apply(params, x)
  assert out.shape == tiny.output_shape('transformer_tokens')
  changed = x.at[:, 3:].set((x[:, 3:] + 1) % 11)
  chex.assert_trees_all_close(out[:, :3], apply(params, changed)[:, :3], atol=1e-6, rtol=1e-6)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(apply(p, x) ** 2)))(params)
  assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads))
  with pytest.raises(ConfigError, match=r'attention_kwargs\.window .*valid: chunk_size, conv_size, decay'):
    tiny.build('transformer_tokens', attention='linear', attention_kwargs=dict(window=4))


@pytest.mark.slow
def test_mqar_linear_config_trains_a_few_steps(tmp_path):
  config = config_lib.load(str(pathlib.Path(__file__).parents[2] / 'configs/mqar_linear.py'))
  config.total_steps, config.log_every, config.eval_every, config.ckpt_every = 3, 1, 3, 3
  config.optim.warmup_steps = 1
  config.data.num_eval, config.eval_batch_size = 16, 16
  config.log.progress, config.log.plot = False, False
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary['status'] == 'done' and summary['step'] == 3, summary
  assert math.isfinite(summary['eval/loss']) and 0 <= summary['eval/accuracy'] <= 1
