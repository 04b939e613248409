"""Ground truth for causal linear attention with per-head decay: a token-by-token `lax.scan`.

Lightning Attention-2 / TransNormerLLM recurrence (Qin et al. 2024, arXiv 2401.04658):
    S_t = exp(g) S_{t-1} + k_t v_t^T,   o_t = scale * q_t^T S_t.
Slow (T sequential steps) but obviously right; every other implementation is tested against it.
"""
import jax
import jax.numpy as jnp
from jax import lax


def linear_attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, g: jax.Array | None,
                               scale: float, initial_state: jax.Array | None
                               ) -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], g [H] or None -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv])."""
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, _, h, dk = q.shape
  dv = v.shape[-1]
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None
        else initial_state.astype(acc))
  decay = None if g is None else jnp.exp(g.astype(acc))[None, :, None, None]

  def step(s, qkv):
    q_t, k_t, v_t = (x.astype(acc) for x in qkv)
    s = s if decay is None else decay * s
    s = s + k_t[..., :, None] * v_t[..., None, :]
    return s, scale * jnp.einsum("bhk,bhkv->bhv", q_t, s, precision=lax.Precision.HIGHEST)

  time_major = tuple(jnp.swapaxes(x, 0, 1) for x in (q, k, v))
  s_final, o = lax.scan(step, s0, time_major)
  return jnp.swapaxes(o, 0, 1).astype(q.dtype), s_final
