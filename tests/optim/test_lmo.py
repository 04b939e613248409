"""Tests for paperlab/optim/lmo.py: Newton-Schulz, the LMOs and their dual norms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paperlab.optim import lmo

CONVERGING = [(1.875, -1.25, 0.375)] * 30  # a quintic NS that converges to the exact polar factor


def _with_singular_values(shape, s, seed):
  rng = np.random.default_rng(seed)
  m, n = shape
  u, _ = np.linalg.qr(rng.normal(size=(m, len(s))))
  v, _ = np.linalg.qr(rng.normal(size=(n, len(s))))
  return (u * s) @ v.T


def _quintic_iterate(s, steps=5):
  a, b, c = lmo.NS_COEFFS
  for _ in range(steps):
    s = a * s + b * s ** 3 + c * s ** 5
  return s


@pytest.mark.parametrize('shape', [(24, 10), (10, 24)])  # tall (transposed inside) and wide
def test_newton_schulz_singular_values(shape):
  k = min(shape)
  s = np.geomspace(0.01, 1.0, k)
  x = _with_singular_values(shape, s, seed=k)
  out = np.asarray(jax.jit(lmo.newton_schulz)(jnp.asarray(x, jnp.float32)), np.float64)
  got = np.linalg.svd(out, compute_uv=False)
  normalized = s / np.linalg.norm(s)          # NS divides by ||X||_F first
  assert normalized.min() >= 3e-3
  np.testing.assert_allclose(np.sort(got), np.sort(_quintic_iterate(normalized)), atol=2e-3)
  lo, hi = lmo.NS_BAND
  assert lo <= got.min() and got.max() <= hi
  # Same singular vectors as the input: out = U p(S) V^T.
  u, _, vt = np.linalg.svd(x, full_matrices=False)
  np.testing.assert_allclose(u.T @ out @ vt.T, np.diag(np.diag(u.T @ out @ vt.T)), atol=2e-3)


def test_band_holds_on_a_fine_grid():
  s = np.geomspace(3e-3, 1.0, 100_000)
  out = _quintic_iterate(s)
  assert lmo.NS_BAND[0] <= out.min() and out.max() <= lmo.NS_BAND[1]


def test_spectral_lmo_and_dual_norm_identities():
  g = jax.random.normal(jax.random.key(0), (12, 5))
  exact = lmo.lmo_spectral(g, ns_coeffs=CONVERGING)
  dual = lmo.dual_norm_spectral(g)
  # <G, -LMO(G)> = ||G||_* and ||LMO(G)|| = 1 in the RMS->RMS norm sqrt(d_in/d_out) ||.||_2.
  np.testing.assert_allclose(jnp.sum(g * -exact), dual, rtol=1e-4)
  np.testing.assert_allclose(np.sqrt(12 / 5) * np.linalg.norm(exact, 2), 1.0, rtol=1e-4)
  # Dual norm = sqrt(d_out/d_in) * nuclear norm.
  nuclear = np.linalg.norm(np.asarray(g), 'nuc')
  np.testing.assert_allclose(dual, np.sqrt(5 / 12) * nuclear, rtol=1e-5)
  # The default (fast) coefficients approximate it within the NS band.
  ratio = jnp.sum(g * -lmo.lmo_spectral(g)) / dual
  assert lmo.NS_BAND[0] <= ratio <= lmo.NS_BAND[1]
  # Hoelder: <G, S> <= ||G||_* ||S|| for any S.
  for seed in range(5):
    s = jax.random.normal(jax.random.key(seed + 1), g.shape)
    assert jnp.sum(g * s) <= dual * np.sqrt(12 / 5) * np.linalg.norm(s, 2) * (1 + 1e-5)


def test_spectral_lmo_of_a_conv_kernel_uses_flax_fan_in():
  g = jax.random.normal(jax.random.key(2), (3, 3, 2, 4))     # d_in = 18, d_out = 4
  out = lmo.lmo_spectral(g)
  assert out.shape == g.shape
  expected = -np.sqrt(4 / 18) * lmo.newton_schulz(g.reshape(18, 4))
  np.testing.assert_allclose(np.asarray(out).reshape(18, 4), expected, rtol=1e-6, atol=1e-7)


def test_sign_and_rms_identities():
  g = jax.random.normal(jax.random.key(3), (7, 3))
  s = lmo.lmo_sign(g)
  np.testing.assert_allclose(jnp.sum(g * -s), lmo.dual_norm_sign(g), rtol=1e-6)
  np.testing.assert_allclose(lmo.dual_norm_sign(g), np.abs(np.asarray(g)).sum(), rtol=1e-6)
  assert float(jnp.max(jnp.abs(s))) == 1.0
  v = jax.random.normal(jax.random.key(4), (9,))
  r = lmo.lmo_rms(v)
  np.testing.assert_allclose(jnp.sqrt(jnp.mean(r ** 2)), 1.0, rtol=1e-6)
  np.testing.assert_allclose(jnp.sum(v * -r), lmo.dual_norm_rms(v), rtol=1e-5)
  np.testing.assert_allclose(lmo.dual_norm_rms(v), 3.0 * np.linalg.norm(v), rtol=1e-6)
  for seed in range(5):  # Hoelder for l1/linf and RMS/its dual
    t = jax.random.normal(jax.random.key(10 + seed), g.shape)
    assert jnp.sum(g * t) <= lmo.dual_norm_sign(g) * jnp.max(jnp.abs(t)) * (1 + 1e-6)
    w = jax.random.normal(jax.random.key(20 + seed), v.shape)
    assert jnp.sum(v * w) <= lmo.dual_norm_rms(v) * jnp.sqrt(jnp.mean(w ** 2)) * (1 + 1e-6)
  np.testing.assert_array_equal(lmo.lmo_rms(jnp.zeros(3)), 0.0)
