"""One chunk of the delta rule (DeltaNet) in WY/UT form: forward and backward equations.

DeltaNet (Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule over
Sequence Length", arXiv 2406.06484). The recurrence
    S_t = S_{t-1} + k_t (beta_t (v_t - S_{t-1}^T k_t))^T,   o_t = scale * q_t^T S_t
is computed per chunk (rows = tokens, S = state before the chunk, M = causal mask incl. diagonal):
    A      = (I + tril(diag(beta) K K^T, -1))^-1           (`tril_inverse`, HIGHEST precision)
    W      = A (beta * K),   U = A (beta * V)               (the WY / UT transform)
    V'     = U - W S
    O      = scale * [ Q S + (Q K^T * M) V' ]
    S_next = S + K^T V'
Zero-padded tokens (k = v = beta = 0) leave the state unchanged, so no masking is needed.

Backward (dS_next = cotangent of the state after the chunk; A, W, U, V' are recomputed, as in
flash-linear-attention's `chunk_delta_rule_bwd`):
    dV'  = scale * (Q K^T * M)^T dO + K dS_next
    dQ   = scale * [ dO S^T + ((dO V'^T) * M) K ]
    dK   = scale * ((dO V'^T) * M)^T Q + V' dS_next^T  + (WY terms below)
    dS   = dS_next + scale * Q^T dO - W^T dV'
    dW   = -dV' S^T,   dU = dV'
    dA   = dW (beta K)^T + dU (beta V)^T,   d(beta K) = A^T dW,   d(beta V) = A^T dU
    dL   = -tril(A^T dA A^T, -1)                            (L = tril(diag(beta) K K^T, -1))
    dK  += beta * d(beta K) + (beta * dL) K + (beta * dL)^T K
    dV   = beta * d(beta V)
    dbeta = rowsum(d(beta K) * K) + rowsum(d(beta V) * V) + rowsum(dL * K K^T)
All of dQ, dK and dbeta are sums over the value columns, so a kernel that tiles dv gets exact
partial sums per tile.

Arrays are [..., C, d] (exactly 2-D inside Pallas kernels), beta is [..., C, 1], all f32/f64.
"""
import jax
import jax.numpy as jnp
from jax import lax

from paperlab.kernels.tril_inverse import InverseMethod, matmul, tril_inverse


def causal(x: jax.Array, strict: bool = False) -> jax.Array:
  """Keeps the lower triangle (incl. the diagonal unless strict) of [..., C, C]."""
  c = x.shape[-1]
  row = lax.broadcasted_iota(jnp.int32, (c, c), 0)
  col = lax.broadcasted_iota(jnp.int32, (c, c), 1)
  keep = row > col if strict else row >= col
  return jnp.where(keep, x, jnp.zeros_like(x))


def wy_transform(k, v, beta, method: InverseMethod) -> tuple[jax.Array, jax.Array, jax.Array]:
  """A = (I + tril(diag(beta) K K^T, -1))^-1, W = A (beta K), U = A (beta V)."""
  a = tril_inverse(beta * matmul(k, k, trans_b=True), method=method)
  return a, matmul(a, beta * k), matmul(a, beta * v)


def new_values(w, u, s) -> jax.Array:
  """V' = U - W S: the chunk's values after the delta-rule correction against the state S."""
  return u - matmul(w, s)


def output(q, k, s, v_new, scale: float) -> jax.Array:
  """O = scale * [ Q S + (Q K^T * M) V' ]."""
  return scale * (matmul(q, s) + matmul(causal(matmul(q, k, trans_b=True)), v_new))


def next_state(k, s, v_new) -> jax.Array:
  """S_next = S + K^T V'."""
  return s + matmul(k, v_new, trans_a=True)


def forward(q, k, v, beta, s, scale: float, method: InverseMethod) -> tuple[jax.Array, jax.Array]:
  """Returns (O, S_next) for one chunk."""
  _, w, u = wy_transform(k, v, beta, method)
  v_new = new_values(w, u, s)
  return output(q, k, s, v_new, scale), next_state(k, s, v_new)


def backward(q, k, v, beta, s, do, ds_next, scale: float, method: InverseMethod):
  """Returns (dQ, dK, dV, dbeta, dS) for one chunk, given the state S before it."""
  a, w, u = wy_transform(k, v, beta, method)
  v_new = new_values(w, u, s)
  kk = matmul(k, k, trans_b=True)
  attn = causal(matmul(q, k, trans_b=True))
  d_attn = causal(matmul(do, v_new, trans_b=True))

  d_v_new = scale * matmul(attn, do, trans_a=True) + matmul(k, ds_next)
  dq = scale * (matmul(do, s, trans_b=True) + matmul(d_attn, k))
  dk = scale * matmul(d_attn, q, trans_a=True) + matmul(v_new, ds_next, trans_b=True)
  ds = ds_next + scale * matmul(q, do, trans_a=True) - matmul(w, d_v_new, trans_a=True)

  dw = -matmul(d_v_new, s, trans_b=True)
  du = d_v_new
  da = matmul(dw, beta * k, trans_b=True) + matmul(du, beta * v, trans_b=True)
  d_kb = matmul(a, dw, trans_a=True)
  d_vb = matmul(a, du, trans_a=True)
  dl = -causal(matmul(matmul(a, da, trans_a=True), a, trans_b=True), strict=True)
  b_dl = beta * dl
  dk = dk + beta * d_kb + matmul(b_dl, k) + matmul(b_dl, k, trans_a=True)
  dv = beta * d_vb
  dbeta = (jnp.sum(d_kb * k, axis=-1, keepdims=True) + jnp.sum(d_vb * v, axis=-1, keepdims=True)
           + jnp.sum(dl * kk, axis=-1, keepdims=True))
  return dq, dk, dv, dbeta, ds
