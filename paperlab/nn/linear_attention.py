"""Causal linear attention with per-head decay and an output norm (TransNormerLLM / Lightning).

TransNormerLLM (Qin et al. 2023, arXiv 2307.14995) with Lightning Attention-2's chunked kernel
(Qin et al. 2024, arXiv 2401.04658), per head h with head_dim = d_model / num_heads:
    q = phi(x W_q),  k = phi(x W_k),  v = x W_v          (optionally after a short conv)
    o_t = scale * q_t^T S_t,   S_t = lambda_h S_{t-1} + k_t v_t^T      (paperlab.kernels)
    y = W_out( RMSNorm(o) * sigmoid(x W_gate) )
The norm is over all of d_model, as TransNormer's NormAttention normalises the whole attention
output (it replaces softmax's implicit normalisation, Qin et al. 2022, "The Devil in Linear
Transformer"). Choices where the papers leave room, each an option:
- decay: 'alibi' (default) fixes lambda_h = exp(-s_h) with ALiBi's slopes s_h as TransNormerLLM
  does; 'learned' starts there and learns log s_h; 'none' is plain causal linear attention.
- feature_map phi: 'silu' (TransNormerLLM's default), 'elu_plus_one' (Katharopoulos et al. 2020),
  'identity'.
- output_gate: TransNormerLLM gates the normalised output; we use a sigmoid gate (its released
  code also offers swish). Off gives y = W_out(RMSNorm(o)).
- use_short_conv: a causal depthwise convolution (width conv_size) on the q, k, v projections
  before phi, as in Based (Arora et al. 2024) and flash-linear-attention's layers; not part of
  TransNormerLLM, so off by default. It gives the layer a cheap previous-token mixer, which
  recall tasks such as MQAR need.
- scale defaults to head_dim^-0.5 (TransNormerLLM uses 1; with the output norm after it, the
  scale only changes the numerics).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from paperlab import kernels
from paperlab.errors import ConfigError, unknown_name_error
from paperlab.nn.norms import EPSILON

DECAYS = ('alibi', 'learned', 'none')
FEATURE_MAPS = {
    'silu': jax.nn.silu,
    'elu_plus_one': lambda x: jax.nn.elu(x) + 1.0,
    'identity': lambda x: x,
}


def check_kernel_options(chunk_size: int, impl: str) -> None:
  """ConfigError for a chunk size or impl that paperlab.kernels does not have."""
  if impl not in kernels.IMPLS:
    raise unknown_name_error('attention impl', impl, kernels.IMPLS)
  if chunk_size not in kernels.CHUNK_SIZES:
    raise ConfigError(f'attention chunk_size must be one of {kernels.CHUNK_SIZES}, got {chunk_size!r}')


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
  return x.reshape(x.shape[:-1] + (num_heads, -1))


class ShortConv(nnx.Module):
  """Causal depthwise 1-D convolution over time: y_t = sum_j kernel[j] * x_{t + j - (K - 1)}.

  A shifted sum rather than `nnx.Conv(feature_group_count=d)`: on XLA:CPU the grouped conv is
  about 25x slower forward and 35x slower backward at [64, 64, 64] (measured). Same init as
  nnx.Conv's depthwise kernel (LeCun normal, fan_in = K).
  """

  def __init__(self, features: int, size: int, *, rngs: nnx.Rngs):
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (size, features)))

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.kernel[...]
    size, length = kernel.shape[0], x.shape[-2]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(size - 1, 0), (0, 0)])
    return sum(kernel[j] * padded[..., j:j + length, :] for j in range(size))


class LinearAttention(nnx.Module):
  """Causal linear attention layer; see the module docstring. [B, T, d_model] -> [B, T, d_model]."""

  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs, decay: str = 'alibi',
               feature_map: str = 'silu', output_gate: bool = True, use_short_conv: bool = False,
               conv_size: int = 4, chunk_size: int = 64, impl: str = 'auto',
               use_bias: bool = False):
    if d_model % num_heads:
      raise ConfigError(f'd_model={d_model} must be divisible by num_heads={num_heads}')
    if decay not in DECAYS:
      raise unknown_name_error('linear attention decay', decay, DECAYS)
    if feature_map not in FEATURE_MAPS:
      raise unknown_name_error('linear attention feature_map', feature_map, FEATURE_MAPS)
    if use_short_conv and conv_size < 1:
      raise ConfigError(f'LinearAttention conv_size must be >= 1, got {conv_size}')
    check_kernel_options(chunk_size, impl)
    self.num_heads = num_heads
    self.decay = decay
    self.feature_map = feature_map
    self.chunk_size = chunk_size
    self.impl = impl
    dense = lambda: nnx.Linear(d_model, d_model, use_bias=use_bias, rngs=rngs)
    self.query = dense()
    self.key = dense()
    self.value = dense()
    conv = lambda: ShortConv(d_model, conv_size, rngs=rngs) if use_short_conv else None
    self.query_conv = conv()
    self.key_conv = conv()
    self.value_conv = conv()
    self.gate = dense() if output_gate else None
    self.norm_output = nnx.RMSNorm(d_model, epsilon=EPSILON, rngs=rngs)
    self.out = dense()
    slopes = jnp.asarray(kernels.alibi_slopes(num_heads))
    self.log_slopes = nnx.Param(jnp.log(slopes)) if decay == 'learned' else None

  def log_decay(self) -> jax.Array | None:
    """Per-head g_h = log(lambda_h) <= 0, or None without decay."""
    if self.decay == 'none':
      return None
    if self.decay == 'learned':
      return -jnp.exp(self.log_slopes[...])
    return kernels.alibi_log_decay(self.num_heads)

  def __call__(self, x: jax.Array) -> jax.Array:
    phi = FEATURE_MAPS[self.feature_map]
    conv = lambda h, c: h if c is None else c(h)
    q = split_heads(phi(conv(self.query(x), self.query_conv)), self.num_heads)
    k = split_heads(phi(conv(self.key(x), self.key_conv)), self.num_heads)
    v = split_heads(conv(self.value(x), self.value_conv), self.num_heads)
    o, _ = kernels.linear_attention(q, k, v, g=self.log_decay(), chunk_size=self.chunk_size,
                                    impl=self.impl)
    y = self.norm_output(o.reshape(x.shape))
    if self.gate is not None:
      y = y * jax.nn.sigmoid(self.gate(x))
    return self.out(y)
