"""Inverse of a unit lower-triangular matrix, (I + L)^-1, for the DeltaNet WY transform.

DeltaNet's chunkwise form (Yang et al. 2024, "Parallelizing Linear Transformers with the Delta
Rule over Sequence Length", arXiv 2406.06484) needs A = (I + tril(diag(beta) K K^T, -1))^-1 for
every chunk. Errors in A enter every output and the state, so every product here runs at
`lax.Precision.HIGHEST` (on TPU the default would round f32 operands to bf16, on GPU to TF32).

Three methods, all exact in exact arithmetic:
- "substitution": forward substitution, one row per step, X[i] = e_i - L[i, :] X. It uses only
  masks, broadcasts and sums (no matmul), so it runs unchanged inside a Pallas-Triton kernel
  (rows cannot be indexed dynamically there) and is immune to TF32. C sequential steps.
- "doubling": (I - N)^-1 = (I + N)(I + N^2)(I + N^4)... with N = -L, exact after
  ceil(log2 C) factors because N is nilpotent. Matmuls only: the Mosaic-TPU choice (levanter,
  MaxText use it for Gated DeltaNet).
- "solve": XLA's triangular solve (LAPACK trsm on CPU). Not usable inside Pallas.
"""
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

InverseMethod = Literal["substitution", "doubling", "solve"]
INVERSE_METHODS = ("substitution", "doubling", "solve")
HIGHEST = lax.Precision.HIGHEST


def matmul(a: jax.Array, b: jax.Array, *, trans_a: bool = False, trans_b: bool = False,
           precision=HIGHEST) -> jax.Array:
  """Batched `a @ b` over leading dims (optionally transposing the last two axes), f32+ result.

  Written as one `lax.dot_general` so that a transposed operand fuses into the matmul on TPU and
  so that the same call lowers to a 2-D `tl.dot` inside Pallas-Triton kernels.
  """
  batch = tuple(range(a.ndim - 2))
  contract_a = a.ndim - 2 if trans_a else a.ndim - 1
  contract_b = b.ndim - 1 if trans_b else b.ndim - 2
  out_dtype = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
  return lax.dot_general(a, b, (((contract_a,), (contract_b,)), (batch, batch)),
                         precision=precision, preferred_element_type=out_dtype)


def _strict_lower(a: jax.Array) -> jax.Array:
  c = a.shape[-1]
  row = lax.broadcasted_iota(jnp.int32, (c, c), 0)
  col = lax.broadcasted_iota(jnp.int32, (c, c), 1)
  return jnp.where(row > col, a, jnp.zeros_like(a))


def _identity(c: int, dtype) -> jax.Array:
  row = lax.broadcasted_iota(jnp.int32, (c, c), 0)
  col = lax.broadcasted_iota(jnp.int32, (c, c), 1)
  return jnp.where(row == col, 1.0, 0.0).astype(dtype)


def _substitution(lower: jax.Array) -> jax.Array:
  c = lower.shape[-1]
  row = lax.broadcasted_iota(jnp.int32, (c, c), 0)

  def step(i, x):
    l_row = jnp.sum(jnp.where(row == i, lower, 0.0), axis=-2)            # L[i, :]
    new_row = jnp.sum(l_row[..., :, None] * x, axis=-2)                  # L[i, :] @ X
    return jnp.where(row == i, x - new_row[..., None, :], x)             # X[i] = e_i - L[i] X

  x = jnp.broadcast_to(_identity(c, lower.dtype), lower.shape)
  return lax.fori_loop(1, c, step, x)


def _doubling(lower: jax.Array) -> jax.Array:
  c = lower.shape[-1]
  eye = _identity(c, lower.dtype)
  power = -lower                                                         # N = -L
  x = eye + power
  for _ in range(max(0, math.ceil(math.log2(c)) - 1)):
    power = matmul(power, power)
    x = matmul(x, eye + power)
  return x


def _solve(lower: jax.Array) -> jax.Array:
  c = lower.shape[-1]
  eye = jnp.broadcast_to(_identity(c, lower.dtype), lower.shape)
  return lax.linalg.triangular_solve(eye + lower, eye, left_side=True, lower=True,
                                     unit_diagonal=True)


@functools.partial(jax.named_call, name="tril_inverse")
def tril_inverse(a: jax.Array, *, method: InverseMethod = "substitution") -> jax.Array:
  """Returns (I + tril(a, -1))^-1 for a [..., C, C] (only the strictly lower part of `a` is read).

  The result is unit lower-triangular. Computed in `promote(a.dtype, float32)`.
  """
  if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
    raise ValueError(f"tril_inverse: expected a [..., C, C] array, got shape {a.shape}")
  lower = _strict_lower(a.astype(jnp.promote_types(a.dtype, jnp.float32)))
  if method == "substitution":
    return _substitution(lower)
  if method == "doubling":
    return _doubling(lower)
  if method == "solve":
    return _solve(lower)
  raise ValueError(f"tril_inverse: unknown method {method!r}; valid: {', '.join(INVERSE_METHODS)}")
