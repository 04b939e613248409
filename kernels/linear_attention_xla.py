"""Chunked causal linear attention in pure jnp: the CPU fast path (Lightning Attention-2 form).

A `lax.scan` walks blocks of chunks (`chunking.scan_blocks`), carrying the state. Inside a block
every chunk is handled at once by batched matmuls, and only the chunk-boundary states need a
short elementwise pass: S_{i+1} = lambda^{n_i} S_i + H_i forward and
dS_i = lambda^{n_i} dS_{i+1} + G_i backward (plain cumulative sums without decay). The
per-chunk equations, forward and backward, live in `linear_attention_chunk`; the gradient is that
hand-derived backward under a `jax.custom_vjp` (about twice as fast on CPU as autodiff of the
forward). Residuals: the inputs and the NT chunk-boundary states (T/C x Dk x Dv per head).
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
  grid: chunking.Blocks
  scale: float
  has_decay: bool


def _scan_states(first, decay, contrib, reverse: bool):
  """x_i = state entering chunk i of the recurrence x <- decay_i x + contrib_i, for all i.

  contrib is [B, H, S, Dk, Dv]. Forward: x_0 = first; reverse: the chunks are visited last to
  first. Returns (x_i stacked on axis 2, the state after the last visited chunk).
  """
  if decay is None:
    inclusive = lax.cumsum(contrib, axis=2, reverse=reverse)
    last = inclusive[:, :, 0] if reverse else inclusive[:, :, -1]
    return first[:, :, None] + inclusive - contrib, first + last
  decay = jnp.broadcast_to(decay, contrib.shape[:3] + (1, 1))

  def step(x, xs):
    decay_i, contrib_i = xs
    return decay_i * x + contrib_i, x

  last, entering = lax.scan(step, first, (jnp.moveaxis(decay, 2, 0), jnp.moveaxis(contrib, 2, 0)),
                            reverse=reverse)
  return jnp.moveaxis(entering, 0, 2), last


def _decay_and_lengths(g, static: _Static):
  """g as [1, H, 1, 1, 1] (None without decay); chunk lengths as [NB, 1, 1, S, 1, 1]."""
  g5 = g[None, :, None, None, None] if static.has_decay else None
  return g5, static.grid.lengths()[:, None, None, :, None, None]


def _forward(q, k, v, g, s0, static: _Static):
  g5, lengths = _decay_and_lengths(g, static)
  c = static.grid.chunk_size

  def body(s, i, blocks, stacked):
    q_b, k_b, v_b = (chunking.to_chunks(x, c) for x in blocks)
    (n,) = stacked
    contrib = chunk.state_contribution(k_b, v_b, g5, n)                # [B, H, S, Dk, Dv]
    s_before, s_next = _scan_states(s, chunk.state_decay(g5, n, s.dtype), contrib, reverse=False)
    o = chunk.output(q_b, k_b, v_b, s_before, g5, static.scale)
    return s_next, (chunking.from_chunks(o),), s_before

  s_final, (o,), s_before = chunking.scan_blocks(body, s0, static.grid, (q, k, v), (lengths,),
                                                 outputs=(jnp.zeros(v.shape, v.dtype),))
  return o, s_final, s_before


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
  g5, lengths = _decay_and_lengths(g, static)
  c, scale = static.grid.chunk_size, static.scale

  def body(ds, i, blocks, stacked):
    q_b, k_b, v_b, do_b = (chunking.to_chunks(x, c) for x in blocks)
    n, s = stacked
    local = chunk.state_grad_contribution(q_b, do_b, g5, scale)
    ds_next, ds_prev = _scan_states(ds, chunk.state_decay(g5, n, ds.dtype), local, reverse=True)
    dq = chunk.grad_q(k_b, v_b, do_b, s, g5, scale)
    dk, dv = chunk.grad_kv(q_b, k_b, v_b, do_b, ds_next, g5, scale, n)
    dg = (chunk.grad_log_decay(q_b, k_b, v_b, do_b, s, ds_next, g5, scale, n).sum((0, 2))
          if static.has_decay else jnp.zeros_like(g))
    return ds_prev, tuple(chunking.from_chunks(x) for x in (dq, dk, dv)), dg

  ds0, (dq, dk, dv), dg = chunking.scan_blocks(
      body, ds_final, static.grid, (q, k, v, do), (lengths, s_before),
      outputs=(jnp.zeros_like(q), jnp.zeros_like(k), jnp.zeros_like(v)), reverse=True)
  return dq, dk, dv, dg.sum(0), ds0


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def linear_attention_xla(q: jax.Array, k: jax.Array, v: jax.Array, g: jax.Array | None,
                         scale: float, initial_state: jax.Array | None, chunk_size: int
                         ) -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], g [H] or None -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv])."""
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  grid = chunking.Blocks(t, chunk_size)
  qp, kp, vp = (grid.pad(x.astype(acc)) for x in (q, k, v))
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None else initial_state.astype(acc))
  g_arr = jnp.zeros((h,), acc) if g is None else g.astype(acc)
  o, s_final = _chunked(qp, kp, vp, g_arr, s0, _Static(grid, float(scale), g is not None))
  return o[:, :t].astype(q.dtype), s_final
