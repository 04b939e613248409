"""Pallas-Triton (GPU layout) kernels for chunked linear attention: forward and backward.

Layout of Lightning Attention-2's Triton kernel (kernels.md 2.2, 4.4): one program per
(batch*head, Dv tile) sees the whole sequence and loops over chunks with `lax.fori_loop`, the
state [Dk, Dv tile] in registers. The backward is one program too: a forward sweep that rebuilds
the states and writes dQ, then a reverse sweep that carries dS and writes dK, dV and dS0. Nothing
is stored between the sweeps (recompute, as LA2 does). dQ and dK are sums over the Dv tiles, so
each tile writes a partial that the wrapper adds up.

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


def _backward_kernel(g_ref, q_ref, k_ref, v_ref, s0_ref, do_ref, ds_ref, dq_ref, dk_ref, dv_ref,
                     ds0_ref, *, seq_len, chunk_size, scale, has_decay):
  acc = s0_ref.dtype
  g = g_ref[0].astype(acc) if has_decay else None
  num_chunks = q_ref.shape[0] // chunk_size

  def forward_sweep(i, s):
    rows = _rows(i, chunk_size)
    k, v, do = (ref[rows, :].astype(acc) for ref in (k_ref, v_ref, do_ref))
    dq_ref[rows, :] = chunk.grad_q(k, v, do, s, g, scale).astype(dq_ref.dtype)
    return chunk.next_state(k, v, s, g, _valid(i, chunk_size, seq_len))

  def reverse_sweep(j, ds):
    i = num_chunks - 1 - j
    rows, n = _rows(i, chunk_size), _valid(i, chunk_size, seq_len)
    q, k, v, do = (ref[rows, :].astype(acc) for ref in (q_ref, k_ref, v_ref, do_ref))
    dk, dv = chunk.grad_kv(q, k, v, do, ds, g, scale, n)
    dk_ref[rows, :] = dk.astype(dk_ref.dtype)
    dv_ref[rows, :] = dv.astype(dv_ref.dtype)
    return chunk.grad_state(q, do, ds, g, scale, n)

  lax.fori_loop(0, num_chunks, forward_sweep, s0_ref[...])
  ds0_ref[...] = lax.fori_loop(0, num_chunks, reverse_sweep, ds_ref[...])


def _specs(t: int, dk: int, bv: int):
  """BlockSpecs over grid (bh, j): whole-sequence blocks, Dv tiled by bv."""
  keys = pl.BlockSpec((None, t, dk), lambda bh, j: (bh, 0, 0))
  values = pl.BlockSpec((None, t, bv), lambda bh, j: (bh, 0, j))
  state = pl.BlockSpec((None, dk, bv), lambda bh, j: (bh, 0, j))
  per_tile = pl.BlockSpec((None, None, t, dk), lambda bh, j: (j, bh, 0, 0))
  scalar = pl.BlockSpec((1,), lambda bh, j: (bh,))
  return keys, values, state, per_tile, scalar


def forward(q, k, v, g, s0, *, seq_len: int, chunk_size: int, scale: float, has_decay: bool,
            interpret: bool):
  bh, t, dk = q.shape
  dv = v.shape[-1]
  bv = pallas_layout.value_block(dv, "gpu")
  keys, values, state, _, scalar = _specs(t, dk, bv)
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
  """Returns (dq, dk, dv, ds0) in f32 (or f64) for the padded kernel-layout inputs."""
  bh, t, dk = q.shape
  dv = v.shape[-1]
  bv = pallas_layout.value_block(dv, "gpu")
  tiles = dv // bv
  keys, values, state, per_tile, scalar = _specs(t, dk, bv)
  acc = s0.dtype
  kernel = functools.partial(_backward_kernel, seq_len=seq_len, chunk_size=chunk_size,
                             scale=scale, has_decay=has_decay)
  dq, dk_, dv_, ds0 = pl.pallas_call(
      kernel, grid=(bh, tiles),
      in_specs=[scalar, keys, keys, values, state, values, state],
      out_specs=[per_tile, per_tile, values, state],
      out_shape=[jax.ShapeDtypeStruct((tiles, bh, t, dk), acc)] * 2
      + [jax.ShapeDtypeStruct(v.shape, acc), jax.ShapeDtypeStruct(s0.shape, acc)],
      compiler_params=pallas_layout.compiler_params("gpu", 2), interpret=interpret,
      name="linear_attention_bwd_gpu")(g, q, k, v, s0, do, ds)
  return dq.sum(0), dk_.sum(0), dv_, ds0
