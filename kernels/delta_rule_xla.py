"""Chunked delta rule (DeltaNet, WY/UT form) in pure jnp: the chunked CPU path.

A `lax.scan` walks blocks of chunks (`chunking.scan_blocks`), carrying the state. Inside a block
the WY transform of every chunk (triangular inverse, W, U), the outputs and all gradients are
batched over its chunks; only two short recurrences over the chunks stay sequential:
  forward   V'_i = U_i - W_i S_i,           S_{i+1} = S_i + K_i^T V'_i
  backward  dV'_i = X_i + K_i dS_{i+1},     dS_i = dS_{i+1} + Y_i - W_i^T dV'_i
with X_i = scale (Q_i K_i^T * M)^T dO_i and Y_i = scale Q_i^T dO_i precomputed per block.
Given the states on both sides of every chunk, `delta_rule_chunk.backward` (the same equations
the Pallas kernels run) gives every gradient at once. It runs under a `jax.custom_vjp`.
Residuals: the inputs and the NT chunk-start states.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from paperlab.kernels import chunking
from paperlab.kernels import delta_rule_chunk as chunk
from paperlab.kernels.tril_inverse import InverseMethod, matmul


@dataclasses.dataclass(frozen=True)
class _Static:
  grid: chunking.Blocks
  scale: float
  inverse_method: InverseMethod


def _along_chunks(*xs):
  return tuple(jnp.moveaxis(x, 2, 0) for x in xs)


def _forward(q, k, v, beta, s0, static: _Static):
  c = static.grid.chunk_size

  def body(s, i, blocks, stacked):
    q_b, k_b, v_b, beta_b = (chunking.to_chunks(x, c) for x in blocks)
    _, w, u = chunk.wy_transform(k_b, v_b, beta_b, static.inverse_method)

    def step(s, xs):
      k_i, w_i, u_i = xs
      v_new = chunk.new_values(w_i, u_i, s)
      return chunk.next_state(k_i, s, v_new), (s, v_new)

    s_next, (s_before, v_new) = lax.scan(step, s, _along_chunks(k_b, w, u))
    s_before, v_new = (jnp.moveaxis(x, 0, 2) for x in (s_before, v_new))
    o = chunk.output(q_b, k_b, s_before, v_new, static.scale)
    return s_next, (chunking.from_chunks(o),), s_before

  s_final, (o,), s_before = chunking.scan_blocks(body, s0, static.grid, (q, k, v, beta),
                                                 outputs=(jnp.zeros(v.shape, v.dtype),))
  return o, s_final, s_before


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _chunked(q, k, v, beta, s0, static: _Static):
  o, s_final, _ = _forward(q, k, v, beta, s0, static)
  return o, s_final


def _chunked_fwd(q, k, v, beta, s0, static):
  o, s_final, s_before = _forward(q, k, v, beta, s0, static)
  return (o, s_final), (q, k, v, beta, s_before)


def _chunked_bwd(static, residuals, cotangents):
  q, k, v, beta, s_before = residuals
  do, ds_final = cotangents
  c, scale = static.grid.chunk_size, static.scale

  def body(ds, i, blocks, stacked):
    q_b, k_b, v_b, beta_b, do_b = (chunking.to_chunks(x, c) for x in blocks)
    (s,) = stacked
    _, w, _ = chunk.wy_transform(k_b, v_b, beta_b, static.inverse_method)
    x = scale * matmul(chunk.causal(matmul(q_b, k_b, trans_b=True)), do_b, trans_a=True)
    y = scale * matmul(q_b, do_b, trans_a=True)                         # [B, H, S, Dk, Dv]

    def step(ds, xs):
      k_i, w_i, x_i, y_i = xs
      d_v_new = x_i + matmul(k_i, ds)
      return ds + y_i - matmul(w_i, d_v_new, trans_a=True), ds

    ds_prev, ds_next = lax.scan(step, ds, _along_chunks(k_b, w, x, y), reverse=True)
    dq, dk, dv, dbeta, _ = chunk.backward(q_b, k_b, v_b, beta_b, s, do_b,
                                          jnp.moveaxis(ds_next, 0, 2), scale, static.inverse_method)
    grads = tuple(chunking.from_chunks(g) for g in (dq, dk, dv))
    return ds_prev, grads + (chunking.from_chunks(dbeta, squeeze=True),), ()

  ds0, grads, _ = chunking.scan_blocks(
      body, ds_final, static.grid, (q, k, v, beta, do), (s_before,),
      outputs=tuple(jnp.zeros_like(x) for x in (q, k, v, beta)), reverse=True)
  return (*grads, ds0)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def delta_rule_xla(q: jax.Array, k: jax.Array, v: jax.Array, beta: jax.Array, scale: float,
                   initial_state: jax.Array | None, chunk_size: int,
                   inverse_method: InverseMethod = "doubling") -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], beta [B, T, H] -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv])."""
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  grid = chunking.Blocks(t, chunk_size)
  qp, kp, vp, bp = (grid.pad(x.astype(acc)) for x in (q, k, v, beta))
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None else initial_state.astype(acc))
  o, s_final = _chunked(qp, kp, vp, bp, s0, _Static(grid, float(scale), inverse_method))
  return o[:, :t].astype(q.dtype), s_final
