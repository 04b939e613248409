"""Linear minimization oracles (LMOs), their dual norms, and the Newton-Schulz orthogonalization.

For a norm ||.|| on a layer's weights, LMO(G) = argmin_{||S|| <= 1} <G, S> and the dual norm is
||G||_* = max_{||S|| <= 1} <G, S> = <G, -LMO(G)>. Geometry-aware optimizers (Scion, Gluon, Muon,
LANTON: Hao et al. 2025, arXiv 2510.14009) step W <- W + eta LMO(momentum). Layouts are Flax's:
a kernel [..., d_out] maps d_in = prod(leading axes) inputs to d_out outputs.

| norm on W                                 | LMO(G)                  | dual norm ||G||_*          |
|-------------------------------------------|-------------------------|----------------------------|
| RMS->RMS: sqrt(d_in/d_out) ||W||_2        | -sqrt(d_out/d_in) U V^T | sqrt(d_out/d_in) ||G||_nuc |
| l1->linf: max_ij |W_ij|                   | -sign(G)                | sum_ij |G_ij|              |
| RMS of a vector: ||w||_2 / sqrt(d)        | -G / ||G||_RMS          | sqrt(d) ||G||_2            |

U V^T (the polar factor of G = U S V^T) is approximated by Newton-Schulz (Keller Jordan's Muon):
X_0 = G / (||G||_F + eps), then X <- a X + (b A + c A^2) X with A = X X^T, (a, b, c) =
(3.4445, -4.7750, 2.0315), 5 steps. Each singular value s of X_0 maps through the scalar quintic
p(s) = a s + b s^3 + c s^5, so the output singular values are p^5(s_i / (||G||_F + eps)). These
coefficients trade exactness for speed: for s_i / ||G||_F >= 3e-3 the output singular values lie
in the band [0.68, 1.21] (not exactly 1); smaller ones grow by ~3.4 per step and may end lower.
Hence <G, -lmo_spectral(G)> approximates the dual norm within that band; with converging
coefficients (e.g. (1.875, -1.25, 0.375)) and more steps it is exact.
"""
import math
from typing import Sequence

import jax
import jax.numpy as jnp

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # Keller Jordan's Muon quintic
NS_BAND = (0.68, 1.21)  # output singular values for inputs s_i / ||G||_F >= 3e-3, 5 steps


def newton_schulz(x: jax.Array, steps: int = 5,
                  coeffs: Sequence[float] | Sequence[Sequence[float]] = NS_COEFFS,
                  eps: float = 1e-7) -> jax.Array:
  """Approximate polar factor U V^T of the matrix (or batch of matrices) x [..., m, n], in float32.

  coeffs: one (a, b, c) for every step, or one triple per step (then `steps` is ignored).
  """
  per_step = isinstance(coeffs[0], (tuple, list))
  schedule = [tuple(c) for c in coeffs] if per_step else [tuple(coeffs)] * steps
  x = x.astype(jnp.float32)
  transpose = x.shape[-2] > x.shape[-1]  # iterate on the wide side: A = X X^T is the smaller Gram
  if transpose:
    x = jnp.swapaxes(x, -1, -2)
  x = x / (jnp.linalg.norm(x, axis=(-2, -1), keepdims=True) + eps)
  for a, b, c in schedule:
    gram = x @ jnp.swapaxes(x, -1, -2)
    x = a * x + (b * gram + c * (gram @ gram)) @ x
  return jnp.swapaxes(x, -1, -2) if transpose else x


def fan_in_out(shape: Sequence[int]) -> tuple[int, int]:
  """(d_in, d_out) of a Flax kernel [..., d_out]; a Conv [kh, kw, C, O] has d_in = kh * kw * C."""
  return math.prod(shape[:-1]), shape[-1]


def as_matrix(g: jax.Array) -> jax.Array:
  return g.reshape(-1, g.shape[-1])


def spectral_scale(shape: Sequence[int]) -> float:
  """sqrt(d_out / d_in): the RMS->RMS factor of the spectral LMO and dual norm."""
  d_in, d_out = fan_in_out(shape)
  return math.sqrt(d_out / d_in)


def lmo_spectral(g: jax.Array, *, ns_steps: int = 5,
                 ns_coeffs: Sequence[float] | Sequence[Sequence[float]] = NS_COEFFS) -> jax.Array:
  """LMO of the RMS->RMS operator norm: -sqrt(d_out/d_in) NS(G), in g's shape and dtype."""
  out = newton_schulz(as_matrix(g), ns_steps, ns_coeffs)
  return (-spectral_scale(g.shape) * out).reshape(g.shape).astype(g.dtype)


def dual_norm_spectral(g: jax.Array) -> jax.Array:
  """sqrt(d_out/d_in) ||G||_nuclear, exact (singular values by SVD, float32)."""
  s = jnp.linalg.svd(as_matrix(g).astype(jnp.float32), compute_uv=False)
  return spectral_scale(g.shape) * jnp.sum(s)


def lmo_sign(g: jax.Array) -> jax.Array:
  """LMO of the l1->linf operator norm (max-abs entry): -sign(G)."""
  return -jnp.sign(g)


def dual_norm_sign(g: jax.Array) -> jax.Array:
  """sum |G_ij| (entrywise l1), float32."""
  return jnp.sum(jnp.abs(g.astype(jnp.float32)))


def lmo_rms(g: jax.Array) -> jax.Array:
  """LMO of the RMS norm of a vector: -G / ||G||_RMS (zero for a zero gradient)."""
  g32 = g.astype(jnp.float32)
  rms = jnp.sqrt(jnp.mean(jnp.square(g32)))
  return (-g32 / jnp.maximum(rms, jnp.finfo(jnp.float32).tiny)).astype(g.dtype)


def dual_norm_rms(g: jax.Array) -> jax.Array:
  """sqrt(d) ||G||_2, float32."""
  g32 = g.astype(jnp.float32)
  return math.sqrt(g.size) * jnp.sqrt(jnp.sum(jnp.square(g32)))
