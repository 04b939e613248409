"""Tests for paperlab/optim/tract.py (Petersen et al. 2024)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from paperlab.errors import ConfigError
from paperlab.optim import conv_patches, dense_inputs, tract
from paperlab.optim.tract import tract_gradient_from_output_grads
from paperlab.optim import tract_gradient as _tract_gradient

# One compiled program per shape is much cheaper than eager op-by-op dispatch of the solves.
tract_gradient = jax.jit(_tract_gradient)


def _reference(g, x, lam):
  """(x^T x / b + lam I)^{-1} G in float64, the direct form."""
  x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
  b, n = x.shape
  return np.linalg.solve(x.T @ x / b + lam * np.eye(n), g.reshape(n, -1)).reshape(g.shape)


@pytest.mark.parametrize('b,n,m', [(64, 12, 5), (6, 20, 4)])  # direct, then Woodbury (b < n)
def test_matches_direct_formula(b, n, m):
  kx, kg = jax.random.split(jax.random.key(b))
  x = jax.random.normal(kx, (b, n)) * jnp.linspace(0.2, 3.0, n)
  g = jax.random.normal(kg, (n, m))
  np.testing.assert_allclose(tract_gradient(g, x, 0.1), _reference(g, x, 0.1), rtol=2e-4,
                             atol=1e-5)


def test_woodbury_equals_direct():
  x = jax.random.normal(jax.random.key(0), (5, 9))
  g = jax.random.normal(jax.random.key(1), (9, 3))
  woodbury = tract_gradient(g, x, 0.3)  # b = 5 < n = 9
  # The same rows repeated twice: same x^T x / b, but b = 10 >= n takes the direct branch.
  direct = tract_gradient(g, jnp.concatenate([x, x]), 0.3)
  np.testing.assert_allclose(woodbury, direct, rtol=1e-4, atol=1e-6)


def test_closed_form_is_the_regularized_least_squares_argmin():
  """W - eta G_tract = argmin_V (1/b) ||x V - z*||^2 + lam ||V - W||^2, z* = x W - eta b dL/dz."""
  rng = np.random.default_rng(0)
  b, n, m, lam, eta = 16, 6, 3, 0.2, 0.5
  x = rng.normal(size=(b, n)) * rng.uniform(0.1, 2, size=n)
  w = rng.normal(size=(n, m))
  target = rng.normal(size=(b, m))
  dz = (x @ w - target) / b                      # dL/dz of L = ||x W - target||^2 / (2 b)
  g = x.T @ dz                                   # the ordinary kernel gradient
  z_star = x @ w - eta * b * dz
  # Stacked least squares: [x / sqrt(b); sqrt(lam) I] V = [z* / sqrt(b); sqrt(lam) W].
  a = np.concatenate([x / np.sqrt(b), np.sqrt(lam) * np.eye(n)])
  rhs = np.concatenate([z_star / np.sqrt(b), np.sqrt(lam) * w])
  argmin = np.linalg.lstsq(a, rhs, rcond=None)[0]
  step = tract_gradient(jnp.asarray(g, jnp.float32), jnp.asarray(x, jnp.float32), lam)
  np.testing.assert_allclose(w - eta * np.asarray(step), argmin, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('b,n', [(40, 8), (4, 8)])
def test_large_lambda_tends_to_plain_gradient(b, n):
  x = jax.random.normal(jax.random.key(2), (b, n))
  g = jax.random.normal(jax.random.key(3), (n, 2))
  lam = 1e5
  np.testing.assert_allclose(tract_gradient(g, x, lam) * lam, g, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('kernel,strides,padding,dilation', [
    ((3, 3), 1, 'SAME', 1), ((2, 3), (2, 1), ((1, 0), (2, 1)), 2)])
def test_conv_patches_transpose_grad_equals_kernel_grad(kernel, strides, padding, dilation):
  images = jax.random.normal(jax.random.key(4), (2, 7, 6, 3))
  conv = nnx.Conv(3, 4, kernel, strides=strides, padding=padding, kernel_dilation=dilation,
                  use_bias=False, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(conv, nnx.Param)
  kernel_value = nnx.to_pure_dict(params)['kernel']
  apply = lambda k: nnx.merge(graphdef, {'kernel': k})(images)

  @jax.jit
  def check(k):
    out = apply(k)
    upstream = jnp.sin(jnp.arange(out.size, dtype=jnp.float32)).reshape(out.shape)
    kernel_grad = jax.grad(lambda k: jnp.sum(apply(k) * upstream))(k)
    patches = conv_patches(images, kernel, strides, padding, kernel_dilation=dilation)
    return (patches.T @ upstream.reshape(-1, 4), kernel_grad.reshape(-1, 4),
            patches @ k.reshape(-1, 4), out.reshape(-1, 4))

  via_patches, autodiff, forward_patches, forward = check(kernel_value)
  np.testing.assert_allclose(via_patches, autodiff, rtol=1e-4, atol=1e-4)
  # And the forward pass: patches @ kernel is the conv output.
  np.testing.assert_allclose(forward_patches, forward, rtol=1e-4, atol=1e-4)


def test_transform_replaces_only_the_masked_kernel():
  params = {'first': {'kernel': jnp.zeros((2, 2, 3, 4)), 'bias': jnp.zeros((4,))},
            'head': {'kernel': jnp.zeros((4, 2))}}
  grads = jax.tree.map(lambda p: jnp.ones_like(p), params)
  mask = {'first': {'kernel': True, 'bias': False}, 'head': False}  # a prefix at 'head'
  tx = optax.chain(tract(0.1, mask=mask), optax.sgd(1.0))
  x = jax.random.normal(jax.random.key(0), (10, 12))
  updates, _ = tx.update(grads, tx.init(params), params, tract_inputs=x)
  expected = -tract_gradient(grads['first']['kernel'], x, 0.1)
  np.testing.assert_allclose(updates["first"]["kernel"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(updates['first']['bias'], -grads['first']['bias'])
  np.testing.assert_array_equal(updates['head']['kernel'], -grads['head']['kernel'])


def test_float32_solve_for_bfloat16_gradients():
  x = jax.random.normal(jax.random.key(8), (32, 6))
  g = jax.random.normal(jax.random.key(9), (6, 3))
  out = tract_gradient(g.astype(jnp.bfloat16), x.astype(jnp.bfloat16), 0.1)
  assert out.dtype == jnp.bfloat16
  ref = _reference(g.astype(jnp.bfloat16), x.astype(jnp.bfloat16), 0.1)
  np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=2e-2, atol=2e-2)


def test_errors():
  params = {'k': jnp.zeros((3, 2))}
  tx = tract(mask={'k': True})
  state = tx.init(params)
  with pytest.raises(ConfigError, match='tract_inputs'):
    tx.update(params, state, params)
  with pytest.raises(ConfigError, match='fan-in'):
    tx.update(params, state, params, tract_inputs=jnp.ones((4, 5)))
  with pytest.raises(ConfigError, match='selects no parameter'):
    tract(mask={'k': False}).init(params)


def test_jit_vmap_and_dense_inputs():
  tx = tract(0.1, mask=lambda p: {'k': True})
  x = jax.random.normal(jax.random.key(10), (2, 3, 4, 5))  # two trials of [3, 4, 5] inputs
  g = {'k': jax.random.normal(jax.random.key(11), (2, 5, 2))}
  step = jax.jit(jax.vmap(lambda g, x: tx.update(g, optax.EmptyState(),
                                                 tract_inputs=dense_inputs(x))[0]))
  batched = step(g, x)
  for i in range(2):
    np.testing.assert_allclose(batched['k'][i], _reference(g['k'][i], x[i].reshape(12, 5), 0.1),
                               rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize('b,n,m', [(64, 12, 5), (6, 20, 4)])  # direct, then push-through (b < n)
def test_output_grads_path_equals_the_gradient_path(b, n, m):
  """x^T (x x^T / b + lam I)^{-1} dL/dz is the TrAct gradient of G = x^T dL/dz."""
  kx, kd = jax.random.split(jax.random.key(100 + b))
  x = jax.random.normal(kx, (b, n)) * jnp.linspace(0.2, 3.0, n)
  delta = jax.random.normal(kd, (b, m))
  g = np.asarray(x).T.astype(np.float64) @ np.asarray(delta, np.float64)
  out = tract_gradient_from_output_grads(delta, x, 0.1, (n, m))
  np.testing.assert_allclose(out, _reference(g, np.asarray(x, np.float64), 0.1), rtol=2e-4,
                             atol=1e-5)


def test_transform_with_output_grads_ignores_the_incoming_kernel_gradient():
  """With tract_output_grads the masked kernel is recomputed from dL/dz (conv kernel layout), so a
  placeholder gradient there gives the same update as the true one; other leaves pass through."""
  kx, kd = jax.random.split(jax.random.key(7))
  x = jax.random.normal(kx, (5, 2 * 2 * 3))          # b = 5 < n = 12: push-through
  delta = jax.random.normal(kd, (5, 4))
  kernel_grad = (x.T @ delta).reshape(2, 2, 3, 4)
  grads = {'first': {'kernel': kernel_grad, 'bias': jnp.ones((4,))}}
  tx = tract(0.1, mask={'first': {'kernel': True, 'bias': False}})
  state = tx.init(grads)
  via_g, _ = tx.update(grads, state, tract_inputs=x)
  placeholder = {'first': {'kernel': jnp.zeros_like(kernel_grad), 'bias': jnp.ones((4,))}}
  via_delta, _ = tx.update(placeholder, state, tract_inputs=x, tract_output_grads=delta)
  np.testing.assert_allclose(via_delta['first']['kernel'], via_g['first']['kernel'], rtol=2e-4,
                             atol=1e-5)
  np.testing.assert_array_equal(via_delta['first']['bias'], grads['first']['bias'])
  with pytest.raises(ConfigError, match='tract_output_grads'):
    tx.update(grads, state, tract_inputs=x, tract_output_grads=delta[:4])
