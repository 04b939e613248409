"""Normalization layers by name. No BatchNorm: every paperlab model is stateless and deterministic.

Naming convention (the NaP mask in paperlab.optim depends on it): a norm that directly follows a
layer `<x>` (a Linear or Conv with a `kernel`) is the sibling attribute `<x>_norm` in the same
module, e.g. `self.conv1` / `self.conv1_norm`. Norms that follow anything else (a residual sum,
a whole sub-block) are named `norm_<where>` so that no kernel is wrongly taken as feeding them.
"""
import jax
from flax import nnx

from paperlab.errors import unknown_name_error

NORMS = ('none', 'layernorm', 'rmsnorm', 'groupnorm')
EPSILON = 1e-6


def make_norm(name: str, num_features: int, *, rngs: nnx.Rngs,
              num_groups: int | None = None) -> nnx.Module | None:
  """The norm over the last (feature) axis, or None for 'none'.

  'groupnorm' normalizes each example over all its non-batch axes within groups of channels
  (Wu & He 2018); it is meant for conv features [B, H, W, C].
  """
  if name == 'none':
    return None
  if name == 'layernorm':
    return nnx.LayerNorm(num_features, epsilon=EPSILON, rngs=rngs)
  if name == 'rmsnorm':
    return nnx.RMSNorm(num_features, epsilon=EPSILON, rngs=rngs)
  if name == 'groupnorm':
    return nnx.GroupNorm(num_features, num_groups=num_groups, epsilon=EPSILON, rngs=rngs)
  raise unknown_name_error('norm', name, NORMS)


def apply_norm(norm: nnx.Module | None, x: jax.Array) -> jax.Array:
  return x if norm is None else norm(x)
