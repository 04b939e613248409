"""Pallas-Mosaic (TPU layout) kernels for the chunked delta rule (DeltaNet): forward and backward.

Grid (batch*head, Dv tile, chunk) with the chunk axis last and "arbitrary", the state in VMEM
scratch (kernels.md 3.5, 4.4). The backward is two calls: a forward-order pass writes the state
before every chunk to a temporary [BH, NT, Dk, Dv] buffer (levanter's "state tape", axlearn's
chunk states); a reverse-order pass (index maps read chunk NT-1-c) rebuilds A, W, U, V', carries
dS in scratch and writes dQ, dK, dV, dbeta and dS0. The triangular inverse is the doubling
product: matmuls only, which is what the MXU wants. Per-token beta rides in [C, 1] blocks.

Inputs are already in kernel layout: q, k [BH, T_pad, Dk_pad], v [BH, T_pad, Dv_pad],
beta [BH, T_pad, 1], states [BH, Dk_pad, Dv_pad] in f32.
"""
import functools

import jax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from paperlab.kernels import delta_rule_chunk as chunk
from paperlab.kernels import pallas_layout

INVERSE_METHOD = "doubling"


def _forward_kernel(q_ref, k_ref, v_ref, beta_ref, s0_ref, o_ref, s_out_ref, s_ref, *, scale):
  acc = s_ref.dtype
  i, last = pl.program_id(2), pl.num_programs(2) - 1

  @pl.when(i == 0)
  def _():
    s_ref[...] = s0_ref[...]

  q, k, v, beta = (ref[...].astype(acc) for ref in (q_ref, k_ref, v_ref, beta_ref))
  o, s_ref[...] = chunk.forward(q, k, v, beta, s_ref[...], scale, INVERSE_METHOD)
  o_ref[...] = o.astype(o_ref.dtype)

  @pl.when(i == last)
  def _():
    s_out_ref[...] = s_ref[...]


def _states_kernel(k_ref, v_ref, beta_ref, s0_ref, states_ref, s_ref):
  acc = s_ref.dtype

  @pl.when(pl.program_id(2) == 0)
  def _():
    s_ref[...] = s0_ref[...]

  k, v, beta = (ref[...].astype(acc) for ref in (k_ref, v_ref, beta_ref))
  s = s_ref[...]
  states_ref[...] = s
  _, w, u = chunk.wy_transform(k, v, beta, INVERSE_METHOD)
  s_ref[...] = chunk.next_state(k, s, chunk.new_values(w, u, s))


def _backward_kernel(q_ref, k_ref, v_ref, beta_ref, states_ref, do_ref, ds_in_ref, dq_ref, dk_ref,
                     dv_ref, dbeta_ref, ds0_ref, ds_ref, *, scale):
  acc = ds_ref.dtype
  c, last = pl.program_id(2), pl.num_programs(2) - 1

  @pl.when(c == 0)
  def _():
    ds_ref[...] = ds_in_ref[...]

  q, k, v, beta, s, do = (ref[...].astype(acc)
                          for ref in (q_ref, k_ref, v_ref, beta_ref, states_ref, do_ref))
  dq, dk, dv, dbeta, ds_ref[...] = chunk.backward(q, k, v, beta, s, do, ds_ref[...], scale,
                                                  INVERSE_METHOD)
  for ref, x in ((dq_ref, dq), (dk_ref, dk), (dv_ref, dv), (dbeta_ref, dbeta)):
    ref[...] = x.astype(ref.dtype)

  @pl.when(c == last)
  def _():
    ds0_ref[...] = ds_ref[...]


def _specs(c: int, dk: int, bv: int, nt: int, reverse: bool):
  """BlockSpecs over grid (bh, j, chunk); `reverse` reads chunk nt-1-chunk."""
  at = (lambda i: nt - 1 - i) if reverse else (lambda i: i)
  keys = pl.BlockSpec((None, c, dk), lambda bh, j, i: (bh, at(i), 0))
  values = pl.BlockSpec((None, c, bv), lambda bh, j, i: (bh, at(i), j))
  beta = pl.BlockSpec((None, c, 1), lambda bh, j, i: (bh, at(i), 0))
  state = pl.BlockSpec((None, dk, bv), lambda bh, j, i: (bh, 0, j))
  states = pl.BlockSpec((None, None, dk, bv), lambda bh, j, i: (bh, at(i), 0, j))
  keys_tile = pl.BlockSpec((None, None, c, dk), lambda bh, j, i: (j, bh, at(i), 0))
  beta_tile = pl.BlockSpec((None, None, c, 1), lambda bh, j, i: (j, bh, at(i), 0))
  return keys, values, beta, state, states, keys_tile, beta_tile


def _call(kernel, grid, in_specs, out_specs, out_shape, scratch, interpret, name):
  return pl.pallas_call(
      kernel, grid=grid, in_specs=in_specs, out_specs=out_specs, out_shape=out_shape,
      scratch_shapes=[pltpu.VMEM(scratch.shape, scratch.dtype)],
      compiler_params=pallas_layout.compiler_params("tpu", 3), interpret=interpret, name=name)


def forward(q, k, v, beta, s0, *, chunk_size: int, scale: float, interpret: bool):
  bh, t, dk = q.shape
  dv = v.shape[-1]
  bv, nt = pallas_layout.value_block(dv, "tpu"), t // chunk_size
  keys, values, beta_spec, state, *_ = _specs(chunk_size, dk, bv, nt, reverse=False)
  return _call(functools.partial(_forward_kernel, scale=scale), (bh, dv // bv, nt),
               [keys, keys, values, beta_spec, state], [values, state],
               [jax.ShapeDtypeStruct(v.shape, v.dtype), jax.ShapeDtypeStruct(s0.shape, s0.dtype)],
               jax.ShapeDtypeStruct((dk, bv), s0.dtype), interpret, "delta_rule_fwd_tpu"
               )(q, k, v, beta, s0)


def backward(q, k, v, beta, s0, do, ds, *, chunk_size: int, scale: float, interpret: bool):
  """Returns (dq, dk, dv, dbeta, ds0) in f32 (or f64) for the padded kernel-layout inputs."""
  bh, t, dk = q.shape
  dv = v.shape[-1]
  acc = s0.dtype
  bv, nt = pallas_layout.value_block(dv, "tpu"), t // chunk_size
  tiles = dv // bv
  grid = (bh, tiles, nt)
  scratch = jax.ShapeDtypeStruct((dk, bv), acc)

  keys, values, beta_spec, state, states, *_ = _specs(chunk_size, dk, bv, nt, reverse=False)
  chunk_states = _call(_states_kernel, grid, [keys, values, beta_spec, state], states,
                       jax.ShapeDtypeStruct((bh, nt, dk, dv), acc), scratch, interpret,
                       "delta_rule_states_tpu")(k, v, beta, s0)

  keys, values, beta_spec, state, states, keys_tile, beta_tile = _specs(
      chunk_size, dk, bv, nt, reverse=True)
  dq, dk_, dv_, dbeta, ds0 = _call(
      functools.partial(_backward_kernel, scale=scale), grid,
      [keys, keys, values, beta_spec, states, values, state],
      [keys_tile, keys_tile, values, beta_tile, state],
      [jax.ShapeDtypeStruct((tiles, bh, t, dk), acc)] * 2
      + [jax.ShapeDtypeStruct(v.shape, acc), jax.ShapeDtypeStruct((tiles, bh, t, 1), acc),
         jax.ShapeDtypeStruct(s0.shape, acc)],
      scratch, interpret, "delta_rule_bwd_tpu")(q, k, v, beta, chunk_states, do, ds)
  return dq.sum(0), dk_.sum(0), dv_, dbeta.sum(0), ds0
