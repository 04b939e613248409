"""Chunked causal linear attention in pure jnp: the CPU fast path (Lightning Attention-2 form).

All chunks are processed at once as batched matmuls; only the chunk-boundary states need a
sequential pass, and that pass is elementwise: S_{i+1} = lambda^{n_i} S_i + H_i forward and
dS_i = lambda^{n_i} dS_{i+1} + G_i backward (plain cumulative sums without decay). The
per-chunk equations, forward and backward, live in `linear_attention_chunk`; the gradient is
that hand-derived backward under a `jax.custom_vjp` (it is about twice as fast on CPU as autodiff
of the forward). Residuals: the chunked inputs and the NT boundary states (T/C x Dk x Dv per head).
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from paperlab.kernels import chunking
from paperlab.kernels import linear_attention_chunk as chunk


@dataclasses.dataclass(frozen=True)
class _Static:
  seq_len: int
  chunk_size: int
  scale: float
  has_decay: bool


def _decay_and_lengths(g, static: _Static):
  """g as [1, H, 1, 1, 1] (None without decay), chunk lengths n as [1, 1, NT, 1, 1]."""
  n = chunking.chunk_lengths(static.seq_len, static.chunk_size)[None, None, :, None, None]
  return (g[None, :, None, None, None] if static.has_decay else None), n


def _scan_states(first, decay, contrib, reverse: bool):
  """x_i = state entering chunk i of the recurrence x <- decay_i x + contrib_i, for all i.

  Forward: x_0 = first; reverse: x_{NT-1} = first and the chunks are visited last to first.
  Returns (x_i stacked on axis 2, the state after the last visited chunk).
  """
  if decay is None:
    inclusive = lax.cumsum(contrib, axis=2, reverse=reverse)
    return first[:, :, None] + inclusive - contrib, first + (inclusive[:, :, 0] if reverse
                                                             else inclusive[:, :, -1])
  decay = jnp.broadcast_to(decay, contrib.shape[:3] + (1, 1))

  def step(x, xs):
    decay_i, contrib_i = xs
    return decay_i * x + contrib_i, x

  last, entering = lax.scan(step, first, (jnp.moveaxis(decay, 2, 0), jnp.moveaxis(contrib, 2, 0)),
                            reverse=reverse)
  return jnp.moveaxis(entering, 0, 2), last


def _forward(q, k, v, g, s0, static: _Static):
  g5, n = _decay_and_lengths(g, static)
  contrib = chunk.state_contribution(k, v, g5, n)                        # [B, H, NT, Dk, Dv]
  s_before, s_final = _scan_states(s0, chunk.state_decay(g5, n, s0.dtype), contrib, reverse=False)
  return chunk.output(q, k, v, s_before, g5, static.scale), s_final, s_before


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _chunked(q, k, v, g, s0, static: _Static):
  o, s_final, _ = _forward(q, k, v, g, s0, static)
  return o, s_final


def _chunked_fwd(q, k, v, g, s0, static):
  o, s_final, s_before = _forward(q, k, v, g, s0, static)
  return (o, s_final), (q, k, v, g, s_before)


def _chunked_bwd(static, residuals, cotangents):
  q, k, v, g, s_before = residuals
  do, ds_final = cotangents
  g5, n = _decay_and_lengths(g, static)
  local = chunk.state_grad_contribution(q, do, g5, static.scale)
  ds_next, ds0 = _scan_states(ds_final, chunk.state_decay(g5, n, ds_final.dtype), local,
                              reverse=True)
  dq = chunk.grad_q(k, v, do, s_before, g5, static.scale)
  dk, dv = chunk.grad_kv(q, k, v, do, ds_next, g5, static.scale, n)
  if static.has_decay:
    dg = chunk.grad_log_decay(q, k, v, do, s_before, ds_next, g5, static.scale, n).sum((0, 2))
  else:
    dg = jnp.zeros_like(g)
  return dq, dk, dv, dg, ds0


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def linear_attention_xla(q: jax.Array, k: jax.Array, v: jax.Array, g: jax.Array | None,
                         scale: float, initial_state: jax.Array | None, chunk_size: int
                         ) -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], g [H] or None -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv])."""
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  qc, kc, vc = (chunking.to_chunks(x.astype(acc), chunk_size) for x in (q, k, v))
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None else initial_state.astype(acc))
  g_arr = jnp.zeros((h,), acc) if g is None else g.astype(acc)
  o, s_final = _chunked(qc, kc, vc, g_arr, s0, _Static(t, chunk_size, float(scale), g is not None))
  return chunking.from_chunks(o, t).astype(q.dtype), s_final
