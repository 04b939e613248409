"""Chunked delta rule (DeltaNet, WY/UT form) in pure jnp: the chunked CPU path.

The sequence is cut into chunks of C tokens and the chunks into blocks of about BLOCK_TOKENS
tokens; a `lax.scan` walks the blocks, carrying the state (so each step's arrays stay in cache
and the time per token stays flat in T). Inside a block, the WY transform of every chunk
(triangular inverse, W, U), the outputs and all gradients are batched over its chunks; only two
short recurrences over the chunks stay sequential:
  forward   V'_i = U_i - W_i S_i,           S_{i+1} = S_i + K_i^T V'_i
  backward  dV'_i = X_i + K_i dS_{i+1},     dS_i = dS_{i+1} + Y_i - W_i^T dV'_i
with X_i = scale (Q_i K_i^T * M)^T dO_i and Y_i = scale Q_i^T dO_i precomputed per block.
Given the states on both sides of every chunk, `delta_rule_chunk.backward` (the same equations
the Pallas kernels run) gives every gradient at once. It runs under a `jax.custom_vjp`.
Residuals: the chunked inputs and the NT chunk-start states.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from paperlab.kernels import chunking
from paperlab.kernels import delta_rule_chunk as chunk
from paperlab.kernels.tril_inverse import InverseMethod, matmul

BLOCK_TOKENS = 512


@dataclasses.dataclass(frozen=True)
class _Static:
  chunk_size: int
  scale: float
  inverse_method: InverseMethod

  def block_chunks(self, num_chunks: int) -> int:
    return max(1, min(num_chunks, BLOCK_TOKENS // self.chunk_size))


def _along_chunks(*xs):
  return tuple(jnp.moveaxis(x, 2, 0) for x in xs)


def _forward(q, k, v, beta, s0, static: _Static):
  def block(s, xs):
    q_b, k_b, v_b, beta_b = xs
    _, w, u = chunk.wy_transform(k_b, v_b, beta_b, static.inverse_method)

    def step(s, xs):
      k_i, w_i, u_i = xs
      v_new = chunk.new_values(w_i, u_i, s)
      return chunk.next_state(k_i, s, v_new), (s, v_new)

    s_next, (s_before, v_new) = lax.scan(step, s, _along_chunks(k_b, w, u))
    s_before, v_new = (jnp.moveaxis(x, 0, 2) for x in (s_before, v_new))
    return s_next, (chunk.output(q_b, k_b, s_before, v_new, static.scale), s_before)

  size = static.block_chunks(q.shape[2])
  blocks = [chunking.to_blocks(x, size) for x in (q, k, v, beta)]
  s_final, (o, s_before) = lax.scan(block, s0, blocks)
  nt = q.shape[2]
  return chunking.from_blocks(o, nt), s_final, chunking.from_blocks(s_before, nt)


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
  scale = static.scale

  def block(ds, xs):
    q_b, k_b, v_b, beta_b, s_b, do_b = xs
    _, w, _ = chunk.wy_transform(k_b, v_b, beta_b, static.inverse_method)
    x = scale * matmul(chunk.causal(matmul(q_b, k_b, trans_b=True)), do_b, trans_a=True)
    y = scale * matmul(q_b, do_b, trans_a=True)                         # [B, H, S, Dk, Dv]

    def step(ds, xs):
      k_i, w_i, x_i, y_i = xs
      d_v_new = x_i + matmul(k_i, ds)
      return ds + y_i - matmul(w_i, d_v_new, trans_a=True), ds

    ds_prev, ds_next = lax.scan(step, ds, _along_chunks(k_b, w, x, y), reverse=True)
    dq, dk, dv, dbeta, _ = chunk.backward(q_b, k_b, v_b, beta_b, s_b, do_b,
                                          jnp.moveaxis(ds_next, 0, 2), scale, static.inverse_method)
    return ds_prev, (dq, dk, dv, dbeta)

  size = static.block_chunks(q.shape[2])
  blocks = [chunking.to_blocks(x, size) for x in (q, k, v, beta, s_before, do)]
  ds0, grads = lax.scan(block, ds_final, blocks, reverse=True)
  nt = q.shape[2]
  return (*(chunking.from_blocks(g, nt) for g in grads), ds0)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def delta_rule_xla(q: jax.Array, k: jax.Array, v: jax.Array, beta: jax.Array, scale: float,
                   initial_state: jax.Array | None, chunk_size: int,
                   inverse_method: InverseMethod = "doubling") -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], beta [B, T, H] -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv])."""
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  qc, kc, vc, bc = (chunking.to_chunks(x.astype(acc), chunk_size) for x in (q, k, v, beta))
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None else initial_state.astype(acc))
  o, s_final = _chunked(qc, kc, vc, bc, s0, _Static(chunk_size, float(scale), inverse_method))
  return chunking.from_chunks(o, t).astype(q.dtype), s_final
