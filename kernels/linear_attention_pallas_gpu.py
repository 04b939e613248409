"""Pallas-Triton (GPU layout) kernels for chunked linear attention: forward and backward.

Layout of Lightning Attention-2's Triton kernel (kernels.md 2.2, 4.4): one program per
(batch*head, Dv tile) sees the whole sequence and loops over chunks with `lax.fori_loop`, the
state [Dk, Dv tile] in registers. The backward is two calls, as in flash-linear-attention: a
forward sweep recomputes the state before every chunk into a temporary [BH, NT*Dk, Dv] buffer,
then a reverse sweep carries dS and writes dQ, dK, dV, dS0 and the log-decay gradient (which
needs each chunk's S and dS_next together, see `linear_attention_chunk.grad_log_decay`). The
forward saves nothing but its inputs. dQ, dK and dg are sums over the Dv tiles, so each tile
writes a partial that the wrapper adds up.

Inputs are already in kernel layout: q, k [BH, T_pad, Dk_pad], v [BH, T_pad, Dv_pad], g [BH]
(log-decay per program, ignored without decay), states [BH, Dk_pad, Dv_pad] in f32.
"""
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from paperlab.kernels import linear_attention_chunk as chunk
from paperlab.kernels import pallas_layout


def _rows(i, c: int):
  return pl.ds(pl.multiple_of(i * c, c), c)


def _valid(i, c: int, seq_len: int):
  return jnp.minimum(c, seq_len - i * c)


def _forward_kernel(g_ref, q_ref, k_ref, v_ref, s0_ref, o_ref, s_ref, *, seq_len, chunk_size,
                    scale, has_decay):
  acc = s0_ref.dtype
  g = g_ref[0].astype(acc) if has_decay else None

  def body(i, s):
    rows = _rows(i, chunk_size)
    q, k, v = (ref[rows, :].astype(acc) for ref in (q_ref, k_ref, v_ref))
    o_ref[rows, :] = chunk.output(q, k, v, s, g, scale).astype(o_ref.dtype)
    return chunk.next_state(k, v, s, g, _valid(i, chunk_size, seq_len))

  num_chunks = q_ref.shape[0] // chunk_size
  s_ref[...] = lax.fori_loop(0, num_chunks, body, s0_ref[...])


def _states_kernel(g_ref, k_ref, v_ref, s0_ref, states_ref, *, seq_len, chunk_size, has_decay):
  acc = s0_ref.dtype
  g = g_ref[0].astype(acc) if has_decay else None
  dk = k_ref.shape[-1]

  def body(i, s):
    k, v = (ref[_rows(i, chunk_size), :].astype(acc) for ref in (k_ref, v_ref))
    states_ref[_rows(i, dk), :] = s
    return chunk.next_state(k, v, s, g, _valid(i, chunk_size, seq_len))

  lax.fori_loop(0, k_ref.shape[0] // chunk_size, body, s0_ref[...])


def _backward_kernel(g_ref, q_ref, k_ref, v_ref, states_ref, do_ref, ds_ref, dq_ref, dk_ref,
                     dv_ref, dg_ref, ds0_ref, *, seq_len, chunk_size, scale, has_decay):
  acc = ds_ref.dtype
  g = g_ref[0].astype(acc) if has_decay else None
  num_chunks = q_ref.shape[0] // chunk_size
  dk_dim = q_ref.shape[-1]

  def body(j, carry):
    ds, dg = carry
    i = num_chunks - 1 - j
    rows, n = _rows(i, chunk_size), _valid(i, chunk_size, seq_len)
    q, k, v, do = (ref[rows, :].astype(acc) for ref in (q_ref, k_ref, v_ref, do_ref))
    s = states_ref[_rows(i, dk_dim), :]
    dq_ref[rows, :] = chunk.grad_q(k, v, do, s, g, scale).astype(dq_ref.dtype)
    dk, dv = chunk.grad_kv(q, k, v, do, ds, g, scale, n)
    dk_ref[rows, :] = dk.astype(dk_ref.dtype)
    dv_ref[rows, :] = dv.astype(dv_ref.dtype)
    if has_decay:
      dg = dg + chunk.grad_log_decay(q, k, v, do, s, ds, g, scale, n)
    return chunk.grad_state(q, do, ds, g, scale, n), dg

  ds0, dg = lax.fori_loop(0, num_chunks, body, (ds_ref[...], jnp.zeros((), acc)))
  ds0_ref[...] = ds0
  dg_ref[...] = jnp.full(dg_ref.shape, dg, dg_ref.dtype)


def _specs(t: int, dk: int, bv: int, nt: int):
  """BlockSpecs over grid (bh, j): whole-sequence blocks, Dv tiled by bv."""
  keys = pl.BlockSpec((None, t, dk), lambda bh, j: (bh, 0, 0))
  values = pl.BlockSpec((None, t, bv), lambda bh, j: (bh, 0, j))
  state = pl.BlockSpec((None, dk, bv), lambda bh, j: (bh, 0, j))
  states = pl.BlockSpec((None, nt * dk, bv), lambda bh, j: (bh, 0, j))
  per_tile = pl.BlockSpec((None, None, t, dk), lambda bh, j: (j, bh, 0, 0))
  scalar = pl.BlockSpec((1,), lambda bh, j: (bh,))
  scalar_per_tile = pl.BlockSpec((None, None, 1, 1), lambda bh, j: (j, bh, 0, 0))
  return keys, values, state, states, per_tile, scalar, scalar_per_tile


def forward(q, k, v, g, s0, *, seq_len: int, chunk_size: int, scale: float, has_decay: bool,
            interpret: bool):
  bh, t, dk = q.shape
  dv = v.shape[-1]
  bv = pallas_layout.value_block(dv, "gpu")
  keys, values, state, _, _, scalar, _ = _specs(t, dk, bv, t // chunk_size)
  kernel = functools.partial(_forward_kernel, seq_len=seq_len, chunk_size=chunk_size,
                             scale=scale, has_decay=has_decay)
  return pl.pallas_call(
      kernel, grid=(bh, dv // bv),
      in_specs=[scalar, keys, keys, values, state],
      out_specs=[values, state],
      out_shape=[jax.ShapeDtypeStruct(v.shape, v.dtype), jax.ShapeDtypeStruct(s0.shape, s0.dtype)],
      compiler_params=pallas_layout.compiler_params("gpu", 2), interpret=interpret,
      name="linear_attention_fwd_gpu")(g, q, k, v, s0)


def backward(q, k, v, g, s0, do, ds, *, seq_len: int, chunk_size: int, scale: float,
             has_decay: bool, interpret: bool):
  """Returns (dq, dk, dv, dg, ds0) in f32 (or f64) for the padded kernel-layout inputs."""
  bh, t, dk = q.shape
  dv = v.shape[-1]
  acc = s0.dtype
  bv, nt = pallas_layout.value_block(dv, "gpu"), t // chunk_size
  tiles = dv // bv
  keys, values, state, states, per_tile, scalar, scalar_per_tile = _specs(t, dk, bv, nt)
  params = pallas_layout.compiler_params("gpu", 2)
  chunk_states = pl.pallas_call(
      functools.partial(_states_kernel, seq_len=seq_len, chunk_size=chunk_size,
                        has_decay=has_decay),
      grid=(bh, tiles), in_specs=[scalar, keys, values, state], out_specs=states,
      out_shape=jax.ShapeDtypeStruct((bh, nt * dk, dv), acc), compiler_params=params,
      interpret=interpret, name="linear_attention_states_gpu")(g, k, v, s0)
  dq, dk_, dv_, dg, ds0 = pl.pallas_call(
      functools.partial(_backward_kernel, seq_len=seq_len, chunk_size=chunk_size, scale=scale,
                        has_decay=has_decay),
      grid=(bh, tiles), in_specs=[scalar, keys, keys, values, states, values, state],
      out_specs=[per_tile, per_tile, values, scalar_per_tile, state],
      out_shape=[jax.ShapeDtypeStruct((tiles, bh, t, dk), acc)] * 2
      + [jax.ShapeDtypeStruct(v.shape, acc), jax.ShapeDtypeStruct((tiles, bh, 1, 1), acc),
         jax.ShapeDtypeStruct(s0.shape, acc)],
      compiler_params=params, interpret=interpret,
      name="linear_attention_bwd_gpu")(g, q, k, v, chunk_states, do, ds)
  return dq.sum(0), dk_.sum(0), dv_, dg.sum((0, 2, 3)), ds0
