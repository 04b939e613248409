"""Pallas-Mosaic (TPU layout) kernels for chunked linear attention: forward and backward.

Layout of JAX's TPU flash-attention and axlearn's SSD kernel (kernels.md 4.2, 4.4): grid
(batch*head, Dv tile, chunk) with the chunk axis last and "arbitrary", so the grid walks the
chunks of one (head, tile) in order while the state lives in a VMEM scratch buffer. It is set
from the initial state on the first chunk and written out on the last. The log-decay per program
sits in SMEM. The backward is two calls: a forward-order pass writes the state before every chunk
to a temporary [BH, NT, Dk, Dv] buffer, and a reverse-order pass (index maps read chunk NT-1-c)
carries dS in scratch and writes dQ, dK, dV, dS0 and the log-decay gradient (accumulated in a
resident output block). dQ, dK and dg are per-Dv-tile partials that the wrapper adds up.

Inputs are already in kernel layout: q, k [BH, T_pad, Dk_pad], v [BH, T_pad, Dv_pad], g [BH],
states [BH, Dk_pad, Dv_pad] in f32.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from paperlab.kernels import linear_attention_chunk as chunk
from paperlab.kernels import pallas_layout


def _forward_kernel(g_ref, q_ref, k_ref, v_ref, s0_ref, o_ref, s_out_ref, s_ref, *, seq_len,
                    chunk_size, scale, has_decay):
  acc = s_ref.dtype
  i, last = pl.program_id(2), pl.num_programs(2) - 1
  g = g_ref[pl.program_id(0)].astype(acc) if has_decay else None

  @pl.when(i == 0)
  def _():
    s_ref[...] = s0_ref[...]

  q, k, v = (ref[...].astype(acc) for ref in (q_ref, k_ref, v_ref))
  s = s_ref[...]
  o_ref[...] = chunk.output(q, k, v, s, g, scale).astype(o_ref.dtype)
  s_ref[...] = chunk.next_state(k, v, s, g, jnp.minimum(chunk_size, seq_len - i * chunk_size))

  @pl.when(i == last)
  def _():
    s_out_ref[...] = s_ref[...]


def _states_kernel(g_ref, k_ref, v_ref, s0_ref, states_ref, s_ref, *, seq_len, chunk_size,
                   has_decay):
  acc = s_ref.dtype
  i = pl.program_id(2)
  g = g_ref[pl.program_id(0)].astype(acc) if has_decay else None

  @pl.when(i == 0)
  def _():
    s_ref[...] = s0_ref[...]

  k, v = (ref[...].astype(acc) for ref in (k_ref, v_ref))
  s = s_ref[...]
  states_ref[...] = s
  s_ref[...] = chunk.next_state(k, v, s, g, jnp.minimum(chunk_size, seq_len - i * chunk_size))


def _backward_kernel(g_ref, q_ref, k_ref, v_ref, states_ref, do_ref, ds_in_ref, dq_ref, dk_ref,
                     dv_ref, dg_ref, ds0_ref, ds_ref, *, seq_len, chunk_size, scale, has_decay):
  acc = ds_ref.dtype
  c, last = pl.program_id(2), pl.num_programs(2) - 1
  i = last - c                                          # this step's chunk (reverse order)
  g = g_ref[pl.program_id(0)].astype(acc) if has_decay else None
  n = jnp.minimum(chunk_size, seq_len - i * chunk_size)

  @pl.when(c == 0)
  def _():
    ds_ref[...] = ds_in_ref[...]
    dg_ref[...] = jnp.zeros(dg_ref.shape, dg_ref.dtype)

  q, k, v, s, do = (ref[...].astype(acc) for ref in (q_ref, k_ref, v_ref, states_ref, do_ref))
  ds = ds_ref[...]
  dq_ref[...] = chunk.grad_q(k, v, do, s, g, scale).astype(dq_ref.dtype)
  dk, dv = chunk.grad_kv(q, k, v, do, ds, g, scale, n)
  dk_ref[...] = dk.astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)
  if has_decay:
    dg_ref[...] += chunk.grad_log_decay(q, k, v, do, s, ds, g, scale, n)
  ds_ref[...] = chunk.grad_state(q, do, ds, g, scale, n)

  @pl.when(c == last)
  def _():
    ds0_ref[...] = ds_ref[...]


def _specs(c: int, dk: int, bv: int, nt: int, reverse: bool):
  """BlockSpecs over grid (bh, j, chunk); `reverse` reads chunk nt-1-chunk."""
  at = (lambda i: nt - 1 - i) if reverse else (lambda i: i)
  keys = pl.BlockSpec((None, c, dk), lambda bh, j, i: (bh, at(i), 0))
  values = pl.BlockSpec((None, c, bv), lambda bh, j, i: (bh, at(i), j))
  state = pl.BlockSpec((None, dk, bv), lambda bh, j, i: (bh, 0, j))
  states = pl.BlockSpec((None, None, dk, bv), lambda bh, j, i: (bh, at(i), 0, j))
  per_tile = pl.BlockSpec((None, None, c, dk), lambda bh, j, i: (j, bh, at(i), 0))
  scalar_per_tile = pl.BlockSpec((None, None, 1, 1), lambda bh, j, i: (j, bh, 0, 0))
  smem = pl.BlockSpec(memory_space=pltpu.SMEM)
  return keys, values, state, states, per_tile, scalar_per_tile, smem


def _call(kernel, grid, in_specs, out_specs, out_shape, scratch, interpret, name):
  return pl.pallas_call(
      kernel, grid=grid, in_specs=in_specs, out_specs=out_specs, out_shape=out_shape,
      scratch_shapes=[pltpu.VMEM(scratch.shape, scratch.dtype)],
      compiler_params=pallas_layout.compiler_params("tpu", 3), interpret=interpret, name=name)


def forward(q, k, v, g, s0, *, seq_len: int, chunk_size: int, scale: float, has_decay: bool,
            interpret: bool):
  bh, t, dk = q.shape
  dv = v.shape[-1]
  bv, nt = pallas_layout.value_block(dv, "tpu"), t // chunk_size
  keys, values, state, *_, smem = _specs(chunk_size, dk, bv, nt, reverse=False)
  kernel = functools.partial(_forward_kernel, seq_len=seq_len, chunk_size=chunk_size,
                             scale=scale, has_decay=has_decay)
  return _call(kernel, (bh, dv // bv, nt), [smem, keys, keys, values, state], [values, state],
               [jax.ShapeDtypeStruct(v.shape, v.dtype), jax.ShapeDtypeStruct(s0.shape, s0.dtype)],
               jax.ShapeDtypeStruct((dk, bv), s0.dtype), interpret, "linear_attention_fwd_tpu"
               )(g, q, k, v, s0)


def backward(q, k, v, g, s0, do, ds, *, seq_len: int, chunk_size: int, scale: float,
             has_decay: bool, interpret: bool):
  """Returns (dq, dk, dv, dg, ds0) in f32 (or f64) for the padded kernel-layout inputs."""
  bh, t, dk = q.shape
  dv = v.shape[-1]
  acc = s0.dtype
  bv, nt = pallas_layout.value_block(dv, "tpu"), t // chunk_size
  tiles = dv // bv
  grid = (bh, tiles, nt)
  scratch = jax.ShapeDtypeStruct((dk, bv), acc)
  static = dict(seq_len=seq_len, chunk_size=chunk_size, has_decay=has_decay)

  keys, values, state, states, *_, smem = _specs(chunk_size, dk, bv, nt, reverse=False)
  chunk_states = _call(functools.partial(_states_kernel, **static), grid,
                       [smem, keys, values, state], states,
                       jax.ShapeDtypeStruct((bh, nt, dk, dv), acc), scratch, interpret,
                       "linear_attention_states_tpu")(g, k, v, s0)

  keys, values, state, states, per_tile, scalar_per_tile, smem = _specs(
      chunk_size, dk, bv, nt, reverse=True)
  dq, dk_, dv_, dg, ds0 = _call(
      functools.partial(_backward_kernel, scale=scale, **static), grid,
      [smem, keys, keys, values, states, values, state],
      [per_tile, per_tile, values, scalar_per_tile, state],
      [jax.ShapeDtypeStruct((tiles, bh, t, dk), acc)] * 2
      + [jax.ShapeDtypeStruct(v.shape, acc), jax.ShapeDtypeStruct((tiles, bh, 1, 1), acc),
         jax.ShapeDtypeStruct(s0.shape, acc)],
      scratch, interpret, "linear_attention_bwd_tpu")(g, q, k, v, chunk_states, do, ds)
  return dq.sum(0), dk_.sum(0), dv_, dg.sum((0, 2, 3)), ds0
