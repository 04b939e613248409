"""One chunk of causal linear attention with per-head decay: forward and backward equations.

Lightning Attention-2 (Qin et al. 2024, arXiv 2401.04658) / TransNormerLLM. The recurrence
    S_t = lambda S_{t-1} + k_t v_t^T,   o_t = scale * q_t^T S_t,   lambda = exp(g), g <= 0,
is computed per chunk of C tokens (local positions p = 0..C-1, state S before the chunk):
    D[a, b] = lambda^(a - b) if a >= b else 0
    O       = scale * [ (Q K^T * D) V  +  (Q * lambda^(p+1)) S ]
    S_next  = lambda^n S + (K * lambda^(n-1-p) [p < n])^T V
where n is the number of real tokens in the chunk (C, or fewer in a zero-padded last chunk).
Using n instead of C is how padding stays out of the final state: the padded steps would
otherwise decay it by lambda^(C-n) more (kernels.md, "padding traps").

Backward (dS_next = cotangent of the state after the chunk; recomputed, never stored):
    P     = Q K^T * D,          dP = (dO V^T) * D
    dQ    = scale * [ dP K + (dO S^T) * lambda^(p+1) ]
    dK    = scale * dP^T Q + (V dS_next^T) * lambda^(n-1-p) [p < n]
    dV    = scale * P^T dO + (K * lambda^(n-1-p) [p < n]) dS_next
    dS    = lambda^n dS_next + scale * (Q * lambda^(p+1))^T dO
and the learnable log-decay gets its own per-chunk gradient, `grad_log_decay`.

Every function takes arrays [..., C, d] (any leading batch dims; exactly 2-D inside the Pallas
kernels) and works in f32 (or f64). `g` is None (no decay) or an array broadcastable to
[..., 1, 1]; `n` is an int or an array broadcastable to [..., 1, 1]. Decay exponents are masked
before `exp` so that exp(positive) never meets a zero (inf * 0 = NaN).
"""
import jax
import jax.numpy as jnp
from jax import lax

from paperlab.kernels.tril_inverse import matmul


def _iota(shape: tuple[int, int], axis: int) -> jax.Array:
  return lax.broadcasted_iota(jnp.int32, shape, axis)


def intra_mask(g: jax.Array | None, c: int, dtype) -> jax.Array:
  """D[a, b] = lambda^(a - b) for a >= b, else 0; [..., C, C]."""
  row, col = _iota((c, c), 0), _iota((c, c), 1)
  if g is None:
    return jnp.where(row >= col, 1.0, 0.0).astype(dtype)
  exponent = jnp.where(row >= col, g * (row - col).astype(dtype), -jnp.inf)
  return jnp.exp(exponent)


def query_decay(g: jax.Array | None, c: int, d: int, dtype) -> jax.Array | None:
  """lambda^(p+1) as a [..., C, d] array (None without decay)."""
  if g is None:
    return None
  return jnp.exp(g * (_iota((c, d), 0) + 1).astype(dtype))


def key_decay(g: jax.Array | None, n, c: int, d: int, dtype) -> jax.Array | None:
  """lambda^(n-1-p) for real tokens p < n and 0 for padding, as [..., C, d] (None: no decay)."""
  pos = _iota((c, d), 0)
  if g is None:
    return None
  exponent = jnp.where(pos < n, g * (n - 1 - pos).astype(dtype), -jnp.inf)
  return jnp.exp(exponent)


def _times(x: jax.Array, decay: jax.Array | None) -> jax.Array:
  return x if decay is None else x * decay


def state_decay(g: jax.Array | None, n, dtype) -> jax.Array | None:
  """lambda^n: the decay of the state across a chunk of n real tokens (None without decay)."""
  return None if g is None else jnp.exp(g * jnp.asarray(n, dtype))


def output(q, k, v, s, g, scale: float) -> jax.Array:
  """O = scale * [ (Q K^T * D) V + (Q * lambda^(p+1)) S ]."""
  c, dk = q.shape[-2:]
  attn = matmul(q, k, trans_b=True) * intra_mask(g, c, q.dtype)
  inter = matmul(_times(q, query_decay(g, c, dk, q.dtype)), s)
  return scale * (matmul(attn, v) + inter)


def state_contribution(k, v, g, n) -> jax.Array:
  """(K * lambda^(n-1-p) [p < n])^T V: what the chunk adds to the state."""
  c, dk = k.shape[-2:]
  return matmul(_times(k, key_decay(g, n, c, dk, k.dtype)), v, trans_a=True)


def next_state(k, v, s, g, n) -> jax.Array:
  """S_next = lambda^n S + (K * lambda^(n-1-p) [p < n])^T V."""
  decay = state_decay(g, n, s.dtype)
  return _times(s, decay) + state_contribution(k, v, g, n)


def grad_q(k, v, do, s, g, scale: float) -> jax.Array:
  """dQ = scale * [ ((dO V^T) * D) K + (dO S^T) * lambda^(p+1) ]."""
  c, dk = k.shape[-2:]
  d_attn = matmul(do, v, trans_b=True) * intra_mask(g, c, k.dtype)
  inter = _times(matmul(do, s, trans_b=True), query_decay(g, c, dk, k.dtype))
  return scale * (matmul(d_attn, k) + inter)


def grad_kv(q, k, v, do, ds_next, g, scale: float, n) -> tuple[jax.Array, jax.Array]:
  """dK = scale dP^T Q + (V dS_next^T) * w and dV = scale P^T dO + (K * w) dS_next."""
  c, dk = k.shape[-2:]
  mask = intra_mask(g, c, q.dtype)
  attn = matmul(q, k, trans_b=True) * mask
  d_attn = matmul(do, v, trans_b=True) * mask
  w = key_decay(g, n, c, dk, k.dtype)
  dk_ = scale * matmul(d_attn, q, trans_a=True) + _times(matmul(v, ds_next, trans_b=True), w)
  dv_ = scale * matmul(attn, do, trans_a=True) + matmul(_times(k, w), ds_next)
  return dk_, dv_


def state_grad_contribution(q, do, g, scale: float) -> jax.Array:
  """scale * (Q * lambda^(p+1))^T dO: what the chunk's outputs add to the state's cotangent."""
  c, dk = q.shape[-2:]
  return scale * matmul(_times(q, query_decay(g, c, dk, q.dtype)), do, trans_a=True)


def grad_state(q, do, ds_next, g, scale: float, n) -> jax.Array:
  """dS = lambda^n dS_next + scale * (Q * lambda^(p+1))^T dO."""
  decay = state_decay(g, n, ds_next.dtype)
  return _times(ds_next, decay) + state_grad_contribution(q, do, g, scale)




def grad_log_decay(q, k, v, do, s, ds_next, g, scale: float, n) -> jax.Array:
  """dL/dg of one chunk for the per-head log-decay g (S and dS_next given), shape [...].

  Differentiating every lambda-power of the chunk equations directly:
      dg = scale * sum_{a>=b} (a-b) lambda^(a-b) (q_a . k_b)(dO_a . v_b)
         + scale * sum_a (a+1) lambda^(a+1) (q_a^T S) . dO_a
         + sum_{b<n} (n-1-b) lambda^(n-1-b) k_b^T dS_next v_b
         + n lambda^n <S, dS_next>
  The total is the sum over chunks. (The shorter identity sum_t (t+1)(q_t.dq_t - k_t.dk_t) used
  by axlearn / fla cancels catastrophically in float32 under strong decay: 0.3-1% error at
  g = -5 in our tests, against 1e-6 for this form.)
  """
  c, dk = q.shape[-2:]
  dv = v.shape[-1]
  dtype = q.dtype
  lag = (_iota((c, c), 0) - _iota((c, c), 1)).astype(dtype)
  attn = matmul(q, k, trans_b=True) * intra_mask(g, c, dtype)
  intra = jnp.sum(lag * attn * matmul(do, v, trans_b=True), axis=(-2, -1))
  rows_v = (_iota((c, dv), 0) + 1).astype(dtype)
  inter = jnp.sum(rows_v * matmul(_times(q, query_decay(g, c, dk, dtype)), s) * do, axis=(-2, -1))
  rows_k = (n - 1 - _iota((c, dk), 0)).astype(dtype)
  keys = jnp.sum(rows_k * _times(k, key_decay(g, n, c, dk, dtype))
                 * matmul(v, ds_next, trans_b=True), axis=(-2, -1))
  n_per_chunk = jnp.asarray(n, dtype)
  if n_per_chunk.ndim >= 2:                              # [..., 1, 1] -> [...]
    n_per_chunk = n_per_chunk[..., 0, 0]
  states = n_per_chunk * jnp.sum(_times(s, state_decay(g, n, dtype)) * ds_next, axis=(-2, -1))
  return scale * (intra + inter) + keys + states
