"""Per-head decay rates for linear attention: ALiBi-like slopes (Lightning Attention / TransNormerLLM).

TransNormerLLM (Qin et al. 2023, arXiv 2307.14995) and Lightning Attention-2 give head h the
decay lambda_h = exp(-s_h), with the ALiBi slopes (Press et al. 2022, "Train Short, Test Long"):
    s_h = 2^(-8 (h + 1) / H)            for H a power of two;
otherwise the slopes of the nearest smaller power of two n, followed by every other slope of 2n
(ALiBi's rule). The kernels take the log-decay g_h = -s_h <= 0.
"""
import math

import jax.numpy as jnp
import numpy as np


def _power_of_two_slopes(n: int) -> list[float]:
  return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]


def alibi_slopes(num_heads: int) -> np.ndarray:
  """ALiBi slopes s_h in (0, 1), decreasing with h; float32 [H]."""
  if num_heads < 1:
    raise ValueError(f"alibi_slopes: num_heads must be >= 1, got {num_heads}")
  n = 2 ** math.floor(math.log2(num_heads))
  slopes = _power_of_two_slopes(n) + _power_of_two_slopes(2 * n)[0::2][:num_heads - n]
  return np.asarray(slopes, np.float32)


def alibi_log_decay(num_heads: int) -> jnp.ndarray:
  """g_h = -s_h: the per-head log-decay of Lightning Attention, for `linear_attention(g=...)`."""
  return -jnp.asarray(alibi_slopes(num_heads))
