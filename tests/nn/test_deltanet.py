"""DeltaNet: a hand-written per-token float64 reference (short conv, SiLU, L2 norm, sigmoid beta,
per-head RMSNorm), causality, gradients, options, and the transformer with attention='delta'."""
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
from paperlab.nn.deltanet import DeltaNet

D, H, T = 12, 3, 20           # head_dim 4; T = 20 spans two chunks of 16


def _reference(x, p, use_short_conv, allow_neg_eigval, gate):
  x = np.asarray(x, np.float64)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
  b, t, d = x.shape
  hd = d // H
  silu = lambda z: z / (1 + np.exp(-z))

  def conv(y, w):                        # causal depthwise: out_t = sum_j w[j] y_{t + j - (K-1)}
    k = w.shape[0]
    padded = np.pad(y, ((0, 0), (k - 1, 0), (0, 0)))
    return sum(w[j] * padded[:, j:j + t] for j in range(k))

  def mix(name):
    y = x @ p[name]['kernel']
    return silu(conv(y, p[f'{name}_conv']['kernel']) if use_short_conv else y).reshape(b, t, H, hd)

  unit = lambda y: y / np.sqrt(np.sum(y * y, -1, keepdims=True) + 1e-6)
  q, k, v = unit(mix('query')), unit(mix('key')), mix('value')
  beta = (2.0 if allow_neg_eigval else 1.0) / (1 + np.exp(-(x @ p['beta']['kernel'])))
  s = np.zeros((b, H, hd, hd))
  o = np.zeros((b, t, H, hd))
  for i in range(t):                      # S_t = S + k (beta (v - S^T k))^T, o_t = scale S^T q
    u = beta[:, i, :, None] * (v[:, i] - np.einsum('bhk,bhkv->bhv', k[:, i], s))
    s = s + k[:, i, :, :, None] * u[:, :, None, :]
    o[:, i] = hd ** -0.5 * np.einsum('bhk,bhkv->bhv', q[:, i], s)
  y = o / np.sqrt(np.mean(o ** 2, -1, keepdims=True) + 1e-6) * p['norm_output']['scale']
  if gate:
    y = y * silu(x @ p['gate']['kernel']).reshape(b, t, H, hd)
  return y.reshape(b, t, d) @ p['out']['kernel']


@pytest.mark.parametrize('use_short_conv,allow_neg_eigval,gate', [(True, False, False),
                                                                  (False, True, True)])
def test_matches_per_token_reference(tiny, use_short_conv, allow_neg_eigval, gate):
  layer = DeltaNet(D, H, use_short_conv=use_short_conv, allow_neg_eigval=allow_neg_eigval,
                   output_gate=gate, chunk_size=16, rngs=tiny.rngs())
  apply, params = tiny.functional(layer)
  params = tiny.perturbed(params)
  x = tiny.normal((2, T, D))
  np.testing.assert_allclose(apply(params, x),
                             _reference(x, params, use_short_conv, allow_neg_eigval, gate),
                             rtol=2e-4, atol=2e-5)


def test_causal_and_differentiable(tiny):
  layer = DeltaNet(D, H, chunk_size=16, rngs=tiny.rngs())
  apply, params = tiny.functional(layer)
  x = tiny.normal((2, T, D))
  changed = x.at[:, 9:].add(1.0)
  out, out_changed = apply(params, x), apply(params, changed)
  chex.assert_trees_all_close(out[:, :9], out_changed[:, :9], atol=1e-6, rtol=1e-6)
  assert jnp.abs(out[:, 9:] - out_changed[:, 9:]).max() > 1e-3
  grads = jax.jit(jax.grad(lambda p: jnp.sum(apply(p, x) ** 2)))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert jnp.all(jnp.isfinite(g)) and jnp.any(g != 0), path


def test_short_conv_is_causal_with_the_conv_init(tiny):
  conv = DeltaNet(D, H, rngs=tiny.rngs()).query_conv
  assert conv.kernel.shape == (4, D)
  impulse = jnp.zeros((1, 10, D)).at[0, 3].set(1.0)
  touched = np.flatnonzero(np.abs(np.asarray(conv(impulse))).sum(-1)[0])
  assert touched.tolist() == [3, 4, 5, 6]                # x_3 reaches y_3 .. y_{3+K-1} only


@pytest.mark.parametrize('kwargs,message', [
    (dict(chunk_size=8), r'chunk_size must be one of \(16, 32, 64, 128\), got 8'),
    (dict(impl='triton'), "unknown attention impl 'triton'"),
    (dict(conv_size=0), 'DeltaNet conv_size must be >= 1, got 0'),
])
def test_bad_options_raise_config_error(tiny, kwargs, message):
  with pytest.raises(ConfigError, match=message):
    DeltaNet(D, H, rngs=tiny.rngs(), **kwargs)


def test_inside_the_transformer(tiny):
  model = tiny.build('transformer_floats', attention='delta',
                     attention_kwargs=dict(chunk_size=16, use_short_conv=True))
  apply, params = tiny.functional(model)
  x = tiny.input('transformer_floats')
  out = apply(params, x)
  assert out.shape == tiny.output_shape('transformer_floats')
  changed = x.at[:, 3:].add(1.0)
  chex.assert_trees_all_close(out[:, :3], apply(params, changed)[:, :3], atol=1e-6, rtol=1e-6)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(apply(p, x) ** 2)))(params)
  assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.slow
def test_mqar_delta_config_trains_a_few_steps(tmp_path):
  config = config_lib.load(str(pathlib.Path(__file__).parents[2] / 'configs/mqar_delta.py'))
  config.total_steps, config.log_every, config.eval_every, config.ckpt_every = 3, 1, 3, 3
  config.optim.warmup_steps = 1
  config.data.num_eval, config.eval_batch_size = 16, 16
  config.log.progress, config.log.plot = False, False
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary['status'] == 'done' and summary['step'] == 3, summary
  assert math.isfinite(summary['eval/loss']) and 0 <= summary['eval/accuracy'] <= 1
