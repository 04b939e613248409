"""tril_inverse: (I + tril(a, -1))^-1 by substitution, doubling and XLA's solve, against jnp.linalg.inv."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paperlab.kernels import INVERSE_METHODS, tril_inverse


def expected(a):
  c = a.shape[-1]
  return np.linalg.inv(np.eye(c) + np.tril(np.asarray(a, np.float64), -1))


@pytest.mark.parametrize("method", INVERSE_METHODS)
@pytest.mark.parametrize("c", [16, 64])
def test_matches_linalg_inv_float64(method, c):
  a = np.random.default_rng(c).normal(size=(3, 2, c, c)) * 0.3
  with jax.enable_x64(True):
    x = tril_inverse(jnp.asarray(a), method=method)
    assert x.dtype == jnp.float64 and x.shape == a.shape
    np.testing.assert_allclose(x, expected(a), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", INVERSE_METHODS)
def test_reads_only_the_strict_lower_triangle(method):
  a = np.random.default_rng(0).normal(size=(32, 32)) * 0.2
  garbage = a + np.triu(np.full((32, 32), 7.0))              # diagonal and upper part ignored
  x = tril_inverse(jnp.asarray(garbage, jnp.float32), method=method)
  np.testing.assert_allclose(x, expected(a), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.triu(np.asarray(x), 1), 0.0)
  np.testing.assert_array_equal(np.diag(np.asarray(x)), 1.0)


@pytest.mark.parametrize("method", INVERSE_METHODS)
def test_deltanet_chunk_in_float32(method):
  """The matrix DeltaNet inverts: tril(diag(beta) K K^T, -1) with unit keys, beta near 1, C = 64."""
  rng = np.random.default_rng(1)
  k = rng.normal(size=(4, 64, 32))
  k /= np.linalg.norm(k, axis=-1, keepdims=True)
  a = rng.uniform(0.9, 1.0, size=(4, 64, 1)) * (k @ np.swapaxes(k, -1, -2))
  x = tril_inverse(jnp.asarray(a, jnp.float32), method=method)
  ref = expected(a)
  assert np.linalg.norm(x - ref) / np.linalg.norm(ref) < 1e-5


def test_errors():
  with pytest.raises(ValueError, match=r"expected a \[..., C, C\] array, got shape \(4, 3\)"):
    tril_inverse(jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match="unknown method 'lu'; valid: substitution, doubling, solve"):
    tril_inverse(jnp.zeros((4, 4)), method="lu")
