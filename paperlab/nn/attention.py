"""Sequence-mixing layers by name (`ATTENTION`), and causal multi-head softmax attention.

Every class in the registry has the same interface, so the transformer's attention slot takes any:

  Cls(d_model, num_heads, *, rngs, **attention_kwargs);  __call__(x [B, T, D]) -> [B, T, D], causal.

'softmax' is defined here; 'linear' (paperlab.nn.linear_attention.LinearAttention) and 'delta'
(paperlab.nn.deltanet.DeltaNet) are imported on lookup, so this registry and every softmax model
work without those modules (and without their kernels) being imported.
"""
import importlib
import inspect
from typing import Any, Callable

import jax
from flax import nnx

from paperlab.errors import ConfigError, unknown_name_error


class SoftmaxAttention(nnx.Module):
  """Multi-head scaled dot-product attention (Vaswani et al. 2017), causal by default.

  softmax(Q K^T / sqrt(head_dim) + mask) V per head, through jax.nn.dot_product_attention (XLA on
  CPU; it may pick cuDNN flash attention on GPU). Projections `query`, `key`, `value`, `out`.
  `causal=False` gives the bidirectional encoder attention the ViT uses.
  """

  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs, causal: bool = True,
               use_bias: bool = False):
    if d_model % num_heads:
      raise ConfigError(f'd_model={d_model} must be divisible by num_heads={num_heads}')
    self.num_heads = num_heads
    self.causal = causal
    dense = lambda: nnx.Linear(d_model, d_model, use_bias=use_bias, rngs=rngs)
    self.query = dense()
    self.key = dense()
    self.value = dense()
    self.out = dense()

  def __call__(self, x: jax.Array) -> jax.Array:
    heads = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, -1))
    q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
    o = jax.nn.dot_product_attention(q, k, v, is_causal=self.causal)
    return self.out(o.reshape(x.shape[:-1] + (-1,)))


def _lazy(module: str, cls: str) -> Callable[[], type]:
  def load() -> type:
    try:
      return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise
      raise ConfigError(f'attention {cls} is not available: {module} is missing') from e
  return load


ATTENTION: dict[str, Callable[[], type]] = {
    'softmax': lambda: SoftmaxAttention,
    'linear': _lazy('paperlab.nn.linear_attention', 'LinearAttention'),
    'delta': _lazy('paperlab.nn.deltanet', 'DeltaNet'),
}


def get_attention(name: str) -> type:
  """The attention class registered as `name`."""
  if name not in ATTENTION:
    raise unknown_name_error('attention', name, ATTENTION)
  return ATTENTION[name]()


def check_kwargs(name: str, cls: type, kwargs: dict[str, Any]) -> None:
  """ConfigError for any key of `kwargs` that `cls.__init__` does not accept."""
  params = inspect.signature(cls.__init__).parameters
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    return
  valid = sorted(k for k, p in params.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and k != 'rngs')
  for key in kwargs:
    if key not in valid:
      raise ConfigError(f'unknown field model.attention_kwargs.{key} for attention {name!r};'
                        f' valid: {", ".join(valid) or "(none)"}')
