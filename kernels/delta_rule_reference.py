"""Ground truth for the delta rule (DeltaNet): a token-by-token `lax.scan`.

DeltaNet (Yang et al. 2024, arXiv 2406.06484), with the state S [Dk, Dv] as in
flash-linear-attention's `delta_rule_recurrence`:
    u_t = beta_t (v_t - S_{t-1}^T k_t),   S_t = S_{t-1} + k_t u_t^T,   o_t = scale * q_t^T S_t.
Every other implementation is tested against it. On CPU it is also a fast path for small
batch x heads (see the dispatch table in `api.py`).
"""
import jax
import jax.numpy as jnp
from jax import lax

_HI = lax.Precision.HIGHEST


def delta_rule_reference(q: jax.Array, k: jax.Array, v: jax.Array, beta: jax.Array, scale: float,
                         initial_state: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """q, k [B, T, H, Dk], v [B, T, H, Dv], beta [B, T, H] -> (o [B, T, H, Dv], S_T [B, H, Dk, Dv])."""
  acc = jnp.promote_types(q.dtype, jnp.float32)
  b, _, h, dk = q.shape
  dv = v.shape[-1]
  s0 = (jnp.zeros((b, h, dk, dv), acc) if initial_state is None
        else initial_state.astype(acc))

  def step(s, xs):
    q_t, k_t, v_t, beta_t = (x.astype(acc) for x in xs)
    u = beta_t[..., None] * (v_t - jnp.einsum("bhk,bhkv->bhv", k_t, s, precision=_HI))
    s = s + k_t[..., :, None] * u[..., None, :]
    return s, scale * jnp.einsum("bhk,bhkv->bhv", q_t, s, precision=_HI)

  time_major = tuple(jnp.swapaxes(x, 0, 1) for x in (q, k, v, beta))
  s_final, o = lax.scan(step, s0, time_major)
  return jnp.swapaxes(o, 0, 1).astype(q.dtype), s_final
