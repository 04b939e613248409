"""Shared helpers for the kernel tests: inputs, the loss whose gradients we compare, tolerances.

Metric (flash-linear-attention's `assert_close`, fla/utils/_testing.py): relative RMS error
||ref - x||_2 / ||ref||_2, skipped when max |ref - x| <= 1e-6 (all-tiny arrays). Tolerances:
  float64 inputs, any impl vs the reference:                 1e-10  (measured ~1e-14)
  float32 inputs:                                            2e-5   (measured ~4e-7)
  bfloat16 inputs vs the f32 reference on the same rounded   fla's ratios: o and S_T 0.005,
  inputs (outputs and gradients are rounded to bf16):        gradients 0.008
The loss is <o, dO> + <S_T, dS_T> with random cotangents, so every gradient also carries the
final-state cotangent, as fla's tests do.

Test files get this module through the `kt` fixture (pytest runs with --import-mode=importlib,
so a helper module beside the tests cannot be imported by name).
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

TOL_F64 = 1e-10
TOL_F32 = 2e-5
TOL_BF16_OUT = 0.005
TOL_BF16_GRAD = 0.008

DECAYS = {
    None: None,
    "strong": lambda h: np.full((h,), -5.0),
    "weak": lambda h: np.full((h,), -0.05),
    "mixed": lambda h: -np.linspace(0.01, 1.0, h),
}
BETAS = {
    "uniform": lambda rng, shape: rng.uniform(0.05, 1.0, shape),
    "near0": lambda rng, shape: rng.uniform(0.0, 1e-3, shape),
    "near1": lambda rng, shape: 1.0 - rng.uniform(0.0, 1e-3, shape),
    "negative_eigenvalues": lambda rng, shape: rng.uniform(1.0, 2.0, shape),
}


def rel_rms(ref, x) -> float:
  ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
  if np.max(np.abs(ref - x), initial=0.0) <= 1e-6:
    return 0.0
  return float(np.linalg.norm(ref - x) / max(np.linalg.norm(ref), 1e-30))


def assert_close(name: str, ref, x, tol: float):
  assert np.all(np.isfinite(np.asarray(x, np.float64))), f"{name}: non-finite values"
  err = rel_rms(ref, x)
  assert err <= tol, f"{name}: relative RMS error {err:.3g} > {tol:.3g}"


def inputs(seed: int, b: int, t: int, h: int, dk: int, dv: int, dtype=jnp.float32, *,
           decay=None, init: bool = False, beta: str | None = None, l2_keys: bool = False):
  """Random (args, cotangents). args: q, k, v, then beta or g (when given), then S0 (when init)."""
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(b, t, h, dk))
  k = rng.normal(size=(b, t, h, dk))
  if l2_keys:
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
  v = rng.normal(size=(b, t, h, dv))
  args = [q, k, v]
  if beta is not None:
    args.append(BETAS[beta](rng, (b, t, h)))
  if decay is not None:
    args.append(DECAYS[decay](h))
  if init:
    args.append(rng.normal(size=(b, h, dk, dv)))
  args = [jnp.asarray(a, dtype) for a in args]
  cotangents = (jnp.asarray(rng.normal(size=(b, t, h, dv)), dtype),
                jnp.asarray(rng.normal(size=(b, h, dk, dv)), jnp.promote_types(dtype, jnp.float32)))
  return args, cotangents


def value_and_grads(fn, args, cotangents):
  """(o, S_T, grads of <o, dO> + <S_T, dS_T> w.r.t. every arg), jitted."""
  do, ds = cotangents

  def loss(*a):
    o, s = fn(*a)
    return (jnp.sum(o.astype(jnp.float32 if o.dtype == jnp.bfloat16 else o.dtype) * do)
            + jnp.sum(s * ds)), (o, s)

  grad_fn = jax.jit(jax.grad(loss, argnums=tuple(range(len(args))), has_aux=True))
  grads, (o, s) = grad_fn(*args)
  return o, s, grads


def compare(ref_out, out, names, tol, grad_tol=None):
  """Asserts o, S_T and every gradient of `out` match `ref_out` (from `value_and_grads`)."""
  (o_ref, s_ref, g_ref), (o, s, g) = ref_out, out
  assert o.shape == o_ref.shape and s.shape == s_ref.shape
  assert_close("o", o_ref, o, tol)
  assert_close("final_state", s_ref, s, tol)
  assert len(g_ref) == len(g) == len(names)
  for name, a, b in zip(names, g_ref, g):
    assert a.shape == b.shape, (name, a.shape, b.shape)
    assert_close(f"d{name}", a, b, grad_tol or tol)


@pytest.fixture(scope="session")
def kt():
  """This module: the helpers and tolerances above."""
  return sys.modules[__name__]
