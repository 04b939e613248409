"""DeltaNet: a causal sequence mixer that writes to its state with the delta rule.

DeltaNet (Schlag et al. 2021; Yang et al. 2024, "Parallelizing Linear Transformers with the Delta
Rule over Sequence Length", arXiv 2406.06484), as in flash-linear-attention's `DeltaNet` layer,
per head h with head_dim = d_model / num_heads:
    q, k, v = SiLU(conv(x W_q)), SiLU(conv(x W_k)), SiLU(conv(x W_v))   (conv: optional short
                                                          causal depthwise convolution, width 4)
    q, k    = q / ||q||, k / ||k||                         (L2 norm per head)
    beta    = sigmoid(x W_beta)                            ([B, T, H]; 2 sigmoid with
                                                            allow_neg_eigval)
    S_t = S_{t-1} + k_t (beta_t (v_t - S_{t-1}^T k_t))^T,   o_t = scale q_t^T S_t   (kernels)
    y = W_out( RMSNorm_head(o) )                           (RMSNorm over head_dim, shared)
The L2-normalised keys keep I - beta k k^T contractive (its eigenvalues are 1 and 1 - beta), so
the state stays bounded for beta in (0, 2). fla applies the SiLU with and without the short
convolution; so do we. Projections carry no bias (fla). `output_gate` adds fla's optional
gate: y = W_out(RMSNorm_head(o) * SiLU(x W_gate)).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from paperlab import kernels
from paperlab.errors import ConfigError
from paperlab.nn.linear_attention import ShortConv, check_kernel_options, split_heads
from paperlab.nn.norms import EPSILON

L2_EPSILON = 1e-6


def l2_normalize(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + L2_EPSILON)


class DeltaNet(nnx.Module):
  """DeltaNet layer; see the module docstring. [B, T, d_model] -> [B, T, d_model]."""

  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs, use_short_conv: bool = True,
               conv_size: int = 4, allow_neg_eigval: bool = False, output_gate: bool = False,
               chunk_size: int = 64, impl: str = 'auto'):
    if d_model % num_heads:
      raise ConfigError(f'd_model={d_model} must be divisible by num_heads={num_heads}')
    if use_short_conv and conv_size < 1:
      raise ConfigError(f'DeltaNet conv_size must be >= 1, got {conv_size}')
    check_kernel_options(chunk_size, impl)
    self.num_heads = num_heads
    self.allow_neg_eigval = allow_neg_eigval
    self.chunk_size = chunk_size
    self.impl = impl
    dense = lambda out: nnx.Linear(d_model, out, use_bias=False, rngs=rngs)
    self.query = dense(d_model)
    self.key = dense(d_model)
    self.value = dense(d_model)
    self.beta = dense(num_heads)
    conv = lambda: ShortConv(d_model, conv_size, rngs=rngs) if use_short_conv else None
    self.query_conv = conv()
    self.key_conv = conv()
    self.value_conv = conv()
    self.gate = dense(d_model) if output_gate else None
    self.norm_output = nnx.RMSNorm(d_model // num_heads, epsilon=EPSILON, rngs=rngs)
    self.out = dense(d_model)

  @staticmethod
  def _mix(x: jax.Array, proj: nnx.Linear, conv: ShortConv | None) -> jax.Array:
    h = proj(x)
    return jax.nn.silu(h if conv is None else conv(h))

  def __call__(self, x: jax.Array) -> jax.Array:
    heads = lambda t: split_heads(t, self.num_heads)
    q = l2_normalize(heads(self._mix(x, self.query, self.query_conv)))
    k = l2_normalize(heads(self._mix(x, self.key, self.key_conv)))
    v = heads(self._mix(x, self.value, self.value_conv))
    beta = jax.nn.sigmoid(self.beta(x))
    if self.allow_neg_eigval:
      beta = 2.0 * beta
    o, _ = kernels.delta_rule(q, k, v, beta, chunk_size=self.chunk_size, impl=self.impl)
    y = self.norm_output(o)
    if self.gate is not None:
      y = y * heads(jax.nn.silu(self.gate(x)))
    return self.out(y.reshape(x.shape))
