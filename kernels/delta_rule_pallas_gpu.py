"""Pallas-Triton (GPU layout) kernels for the chunked delta rule (DeltaNet): forward and backward.

One program per (batch*head, Dv tile) loops over the chunks with `lax.fori_loop`, the state in
registers (kernels.md 3.5, 4.4). The delta rule cannot run its state backwards, so the backward
is two calls, as in flash-linear-attention: a forward sweep that recomputes the state before
every chunk into a temporary [BH, NT*Dk, Dv] buffer, then a reverse sweep that rebuilds A, W, U
and V' per chunk, carries dS, and writes dQ, dK, dV, dbeta and dS0. dQ, dK and dbeta are
per-Dv-tile partials that the wrapper adds up. The triangular inverse is forward substitution
(masks and sums only: no row indexing, no TF32).

Inputs are already in kernel layout: q, k [BH, T_pad, Dk_pad], v [BH, T_pad, Dv_pad],
beta [BH, T_pad, 1], states [BH, Dk_pad, Dv_pad] in f32.
"""
import functools

import jax
from jax import lax
from jax.experimental import pallas as pl

from paperlab.kernels import delta_rule_chunk as chunk
from paperlab.kernels import pallas_layout

INVERSE_METHOD = "substitution"


def _rows(i, size: int):
  return pl.ds(pl.multiple_of(i * size, size), size)


def _load(refs, rows, dtype):
  return tuple(ref[rows, :].astype(dtype) for ref in refs)


def _forward_kernel(q_ref, k_ref, v_ref, beta_ref, s0_ref, o_ref, s_ref, *, chunk_size, scale):
  acc = s0_ref.dtype

  def body(i, s):
    rows = _rows(i, chunk_size)
    q, k, v, beta = _load((q_ref, k_ref, v_ref, beta_ref), rows, acc)
    o, s = chunk.forward(q, k, v, beta, s, scale, INVERSE_METHOD)
    o_ref[rows, :] = o.astype(o_ref.dtype)
    return s

  s_ref[...] = lax.fori_loop(0, q_ref.shape[0] // chunk_size, body, s0_ref[...])


def _states_kernel(k_ref, v_ref, beta_ref, s0_ref, states_ref, *, chunk_size):
  acc = s0_ref.dtype
  dk = k_ref.shape[-1]

  def body(i, s):
    k, v, beta = _load((k_ref, v_ref, beta_ref), _rows(i, chunk_size), acc)
    states_ref[_rows(i, dk), :] = s
    _, w, u = chunk.wy_transform(k, v, beta, INVERSE_METHOD)
    return chunk.next_state(k, s, chunk.new_values(w, u, s))

  lax.fori_loop(0, k_ref.shape[0] // chunk_size, body, s0_ref[...])


def _backward_kernel(q_ref, k_ref, v_ref, beta_ref, states_ref, do_ref, ds_ref, dq_ref, dk_ref,
                     dv_ref, dbeta_ref, ds0_ref, *, chunk_size, scale):
  acc = ds_ref.dtype
  num_chunks = q_ref.shape[0] // chunk_size
  dk_dim = q_ref.shape[-1]

  def body(j, ds):
    i = num_chunks - 1 - j
    rows = _rows(i, chunk_size)
    q, k, v, beta, do = _load((q_ref, k_ref, v_ref, beta_ref, do_ref), rows, acc)
    s = states_ref[_rows(i, dk_dim), :]
    dq, dk, dv, dbeta, ds = chunk.backward(q, k, v, beta, s, do, ds, scale, INVERSE_METHOD)
    for ref, x in ((dq_ref, dq), (dk_ref, dk), (dv_ref, dv), (dbeta_ref, dbeta)):
      ref[rows, :] = x.astype(ref.dtype)
    return ds

  ds0_ref[...] = lax.fori_loop(0, num_chunks, body, ds_ref[...])


def _specs(t: int, dk: int, bv: int, nt: int):
  """BlockSpecs over grid (bh, j): whole-sequence blocks, Dv tiled by bv."""
  keys = pl.BlockSpec((None, t, dk), lambda bh, j: (bh, 0, 0))
  values = pl.BlockSpec((None, t, bv), lambda bh, j: (bh, 0, j))
  beta = pl.BlockSpec((None, t, 1), lambda bh, j: (bh, 0, 0))
  state = pl.BlockSpec((None, dk, bv), lambda bh, j: (bh, 0, j))
  states = pl.BlockSpec((None, nt * dk, bv), lambda bh, j: (bh, 0, j))
  keys_tile = pl.BlockSpec((None, None, t, dk), lambda bh, j: (j, bh, 0, 0))
  beta_tile = pl.BlockSpec((None, None, t, 1), lambda bh, j: (j, bh, 0, 0))
  return keys, values, beta, state, states, keys_tile, beta_tile


def _call(kernel, grid, in_specs, out_specs, out_shape, interpret, name):
  return pl.pallas_call(kernel, grid=grid, in_specs=in_specs, out_specs=out_specs,
                        out_shape=out_shape, compiler_params=pallas_layout.compiler_params("gpu", 2),
                        interpret=interpret, name=name)


def forward(q, k, v, beta, s0, *, chunk_size: int, scale: float, interpret: bool):
  bh, t, dk = q.shape
  dv = v.shape[-1]
  bv = pallas_layout.value_block(dv, "gpu")
  keys, values, beta_spec, state, *_ = _specs(t, dk, bv, t // chunk_size)
  kernel = functools.partial(_forward_kernel, chunk_size=chunk_size, scale=scale)
  return _call(kernel, (bh, dv // bv), [keys, keys, values, beta_spec, state], [values, state],
               [jax.ShapeDtypeStruct(v.shape, v.dtype), jax.ShapeDtypeStruct(s0.shape, s0.dtype)],
               interpret, "delta_rule_fwd_gpu")(q, k, v, beta, s0)


def backward(q, k, v, beta, s0, do, ds, *, chunk_size: int, scale: float, interpret: bool):
  """Returns (dq, dk, dv, dbeta, ds0) in f32 (or f64) for the padded kernel-layout inputs."""
  bh, t, dk = q.shape
  dv = v.shape[-1]
  acc = s0.dtype
  bv, nt = pallas_layout.value_block(dv, "gpu"), t // chunk_size
  tiles = dv // bv
  keys, values, beta_spec, state, states, keys_tile, beta_tile = _specs(t, dk, bv, nt)
  grid = (bh, tiles)
  chunk_states = _call(
      functools.partial(_states_kernel, chunk_size=chunk_size), grid,
      [keys, values, beta_spec, state], states, jax.ShapeDtypeStruct((bh, nt * dk, dv), acc),
      interpret, "delta_rule_states_gpu")(k, v, beta, s0)
  dq, dk_, dv_, dbeta, ds0 = _call(
      functools.partial(_backward_kernel, chunk_size=chunk_size, scale=scale), grid,
      [keys, keys, values, beta_spec, states, values, state],
      [keys_tile, keys_tile, values, beta_tile, state],
      [jax.ShapeDtypeStruct((tiles, bh, t, dk), acc)] * 2
      + [jax.ShapeDtypeStruct(v.shape, acc), jax.ShapeDtypeStruct((tiles, bh, t, 1), acc),
         jax.ShapeDtypeStruct(s0.shape, acc)],
      interpret, "delta_rule_bwd_gpu")(q, k, v, beta, chunk_states, do, ds)
  return dq.sum(0), dk_.sum(0), dv_, dbeta.sum(0), ds0
