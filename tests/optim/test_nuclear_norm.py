"""Tests for paperlab/optim/nuclear_norm.py (deflated block Lanczos nuclear norm, for LANTON)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paperlab.optim import nuclear_norm, nuclear_norm_exact


def _exact(m) -> float:
  m = np.asarray(m, np.float64)
  return float(np.linalg.svd(m.reshape(-1, m.shape[-1]), compute_uv=False).sum())


def _matrix(kind: str, shape, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  n, k = int(np.prod(shape[:-1])), shape[-1]
  noise = rng.standard_normal((n, k))
  r = min(n, k)
  if kind == 'gauss':
    m = noise
  elif kind == 'decaying':  # a gradient-like spectrum 1/i plus a little noise
    u = np.linalg.qr(rng.standard_normal((n, r)))[0]
    v = np.linalg.qr(rng.standard_normal((k, r)))[0]
    m = (u / np.arange(1, r + 1)) @ v.T * np.sqrt(n) + 0.02 * noise
  else:  # 'lowrank': rank 5
    m = rng.standard_normal((n, 5)) @ rng.standard_normal((5, k))
  return m.reshape(shape).astype(np.float32)


_estimate = jax.jit(nuclear_norm)
_KEYS = jax.random.split(jax.random.key(0), 3)


@pytest.mark.parametrize('kind,shape', [
    ('gauss', (200, 150)),          # tall, not a power of two
    ('decaying', (150, 200)),       # wide
    ('lowrank', (10, 20, 150)),     # a 3-axis kernel, as_matrix [200, 150]
])
def test_estimate_is_close_to_the_svd_value(kind, shape):
  m = _matrix(kind, shape)
  exact = _exact(m)
  np.testing.assert_allclose(nuclear_norm_exact(m), exact, rtol=1e-4)
  for key in _KEYS:
    np.testing.assert_allclose(_estimate(m, key), exact, rtol=0.04)


def test_top_part_is_a_lower_bound_and_exact_for_low_rank():
  """rest_steps=0 gives ||M Q||_* <= ||M||_*, equal once the Krylov space holds M's row space."""
  top_only = jax.jit(functools.partial(nuclear_norm, rest_steps=0))
  gauss = _matrix('gauss', (200, 150))
  assert float(top_only(gauss, _KEYS[0])) < 0.8 * _exact(gauss)  # 96 of 150 directions
  low = _matrix('lowrank', (200, 150))  # rank 5 <= p (s_1 - 1) = 80
  # Exact up to the float32 Gram's rounding: each of the ~145 null directions keeps an eigenvalue
  # ~eps * sigma_max^2, i.e. a singular value ~sqrt(eps) * sigma_max (measured 0.16 % in all).
  np.testing.assert_allclose(top_only(low, _KEYS[0]), _exact(low), rtol=4e-3)


def test_small_blocks_and_the_exact_fallback():
  m = _matrix('decaying', (90, 70))  # square and low rank: 4 * (4 - 1) < 20
  small = jax.jit(functools.partial(nuclear_norm, probes=4, top_steps=4, rest_steps=3))
  np.testing.assert_allclose(small(m, _KEYS[0]), _exact(m), rtol=0.05)
  low = _matrix('lowrank', (64, 64))
  np.testing.assert_allclose(small(low, _KEYS[0]), _exact(low), rtol=1e-3)
  # smaller side 70 <= 16 * (6 + 1): the SVD, exact
  np.testing.assert_allclose(_estimate(m, _KEYS[0]), _exact(m), rtol=1e-4)


def test_deterministic_for_a_key_and_scale_equivariant():
  m = _matrix('gauss', (200, 150))
  a, b, c = (float(_estimate(m, k)) for k in (_KEYS[0], _KEYS[0], _KEYS[1]))
  assert a == b and a != c
  tiny = float(_estimate(m * 1e-25, _KEYS[0]))  # squares would underflow float32 unscaled
  np.testing.assert_allclose(tiny, 1e-25 * a, rtol=1e-4)
  assert float(_estimate(np.zeros((200, 150), np.float32), _KEYS[0])) == 0.0


def test_vmap_matches_single_calls():
  ms = np.stack([_matrix('gauss', (200, 150), seed) for seed in (1, 2)])
  batched = jax.jit(jax.vmap(nuclear_norm))(ms, _KEYS[:2])
  for i in range(2):
    np.testing.assert_allclose(batched[i], _estimate(ms[i], _KEYS[i]), rtol=1e-5)
