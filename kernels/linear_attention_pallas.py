"""Chunked linear attention in Pallas: padding, layout choice and the `jax.custom_vjp`.

The forward and backward are Pallas kernels in either layout (`linear_attention_pallas_gpu`,
`linear_attention_pallas_tpu`). The residuals are only q, k, v, g and S0: the backward recomputes
the chunk states (as flash-linear-attention does) instead of saving them from the forward.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp

from paperlab.kernels import linear_attention_pallas_gpu as gpu
from paperlab.kernels import linear_attention_pallas_tpu as tpu
from paperlab.kernels import pallas_layout
from paperlab.kernels.pallas_layout import Layout


@dataclasses.dataclass(frozen=True)
class _Static:
  seq_len: int
  chunk_size: int
  scale: float
  has_decay: bool
  layout: Layout
  interpret: bool

  def kernel_kwargs(self):
    return dict(seq_len=self.seq_len, chunk_size=self.chunk_size, scale=self.scale,
                has_decay=self.has_decay, interpret=self.interpret)


def _kernels(layout: Layout):
  return gpu if layout == "gpu" else tpu


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _linear_attention(q, k, v, g, s0, static: _Static):
  return _kernels(static.layout).forward(q, k, v, g, s0, **static.kernel_kwargs())


def _fwd(q, k, v, g, s0, static):
  return _linear_attention(q, k, v, g, s0, static), (q, k, v, g, s0)


def _bwd(static, residuals, cotangents):
  do, ds_final = cotangents
  q, k, v, g, s0 = residuals
  grads = _kernels(static.layout).backward(
      q, k, v, g, s0, do.astype(v.dtype), ds_final.astype(s0.dtype), **static.kernel_kwargs())
  return tuple(d.astype(x.dtype) for d, x in zip(grads, residuals))


_linear_attention.defvjp(_fwd, _bwd)


def linear_attention_pallas(q: jax.Array, k: jax.Array, v: jax.Array, g: jax.Array | None,
                            scale: float, initial_state: jax.Array | None, chunk_size: int, *,
                            layout: Layout | None = None, interpret: bool | None = None
                            ) -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], g [H] or None -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv]).

  `layout` defaults to the backend's ("tpu" on TPU, else "gpu"); `interpret` defaults to True
  off GPU/TPU. Call it under `jax.jit`: interpret mode outside jit re-traces every call.
  """
  layout = pallas_layout.default_layout() if layout is None else layout
  interpret = pallas_layout.default_interpret() if interpret is None else interpret
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  t_pad = chunk_size * -(-t // chunk_size)
  dk_pad, dv_pad = pallas_layout.padded_dim(dk, layout), pallas_layout.padded_dim(dv, layout)
  qh, kh = (pallas_layout.to_heads(x, t_pad, dk_pad) for x in (q, k))
  vh = pallas_layout.to_heads(v, t_pad, dv_pad)
  g_heads = (jnp.zeros((h,), jnp.float32) if g is None else g).astype(acc)
  gh = jnp.broadcast_to(g_heads[None], (b, h)).reshape(b * h)
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None else initial_state.astype(acc))
  static = _Static(t, chunk_size, float(scale), g is not None, layout, bool(interpret))
  o, s_final = _linear_attention(qh, kh, vh, gh, pallas_layout.pad_state(s0, dk_pad, dv_pad),
                                 static)
  return (pallas_layout.from_heads(o, b, t, dv),
          pallas_layout.unpad_state(s_final, b, dk, dv))
