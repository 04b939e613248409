"""What the Pallas kernels share: layout choice, padding, compiler params, interpret mode.

Two layouts, one per Pallas backend (kernels.md, sections 4.3-4.4):
- "gpu" (Pallas-Triton): grid (B*H, Dv tiles). Each program sees the whole sequence and walks
  the chunks with `lax.fori_loop`, carrying the state in registers. Triton needs power-of-two
  array sizes and dot dims >= 16, so Dk and Dv are zero-padded to max(16, next_pow2(D)).
- "tpu" (Mosaic): grid (B*H, Dv tiles, chunks) with the chunk axis last and "arbitrary" (the
  grid runs in order), the state in a VMEM scratch buffer, scalars in SMEM. Blocks must be
  (8, 128)-aligned, so Dk and Dv are zero-padded to multiples of 128.
On CPU both run with `interpret=True`, which executes the grid sequentially.
"""
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as pltriton

Layout = Literal["gpu", "tpu"]
LAYOUTS = ("gpu", "tpu")
GPU_VALUE_BLOCK = 64     # Dv tile of a GPU program: two tiles at Dv = 128, as in Lightning Attention-2.
TPU_LANES = 128


def default_layout() -> Layout:
  return "tpu" if jax.default_backend() == "tpu" else "gpu"


def default_interpret() -> bool:
  """Compiled kernels on GPU and TPU; the interpreter everywhere else (CPU)."""
  return jax.default_backend() not in ("gpu", "cuda", "rocm", "tpu")


def padded_dim(d: int, layout: Layout) -> int:
  if layout == "gpu":
    return max(16, 1 << (d - 1).bit_length())
  return TPU_LANES * math.ceil(d / TPU_LANES)


def value_block(dv_padded: int, layout: Layout) -> int:
  return min(dv_padded, GPU_VALUE_BLOCK) if layout == "gpu" else TPU_LANES


def compiler_params(layout: Layout, num_grid_axes: int):
  """Triton params for the GPU layout; Mosaic params with the chunk axis "arbitrary" for TPU."""
  if layout == "gpu":
    return pltriton.CompilerParams(num_warps=4, num_stages=1)
  semantics = ("parallel",) * (num_grid_axes - 1) + ("arbitrary",)
  return pltpu.CompilerParams(dimension_semantics=semantics)


def to_heads(x: jax.Array, seq_len: int, dim: int) -> jax.Array:
  """[B, T, H, D] (or [B, T, H]) -> [B*H, seq_len, dim (or 1)], zero-padded at the end."""
  if x.ndim == 3:
    x = x[..., None]
    dim = 1
  b, t, h, d = x.shape
  x = jnp.pad(x, ((0, 0), (0, seq_len - t), (0, 0), (0, dim - d)))
  return x.transpose(0, 2, 1, 3).reshape(b * h, seq_len, dim)


def from_heads(x: jax.Array, batch: int, seq_len: int, dim: int) -> jax.Array:
  """[B*H, T_padded, D_padded] -> [B, seq_len, H, dim]."""
  bh, t, d = x.shape
  return x.reshape(batch, bh // batch, t, d).transpose(0, 2, 1, 3)[:, :seq_len, :, :dim]


def pad_state(s: jax.Array, dk: int, dv: int) -> jax.Array:
  """[B, H, Dk, Dv] -> [B*H, dk, dv], zero-padded."""
  b, h, k, v = s.shape
  return jnp.pad(s, ((0, 0), (0, 0), (0, dk - k), (0, dv - v))).reshape(b * h, dk, dv)


def unpad_state(s: jax.Array, batch: int, dk: int, dv: int) -> jax.Array:
  bh = s.shape[0]
  return s.reshape(batch, bh // batch, *s.shape[1:])[:, :, :dk, :dv]
