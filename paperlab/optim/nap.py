"""NaP, the projection half of Normalize-and-Project: Lyle, Zheng, Khetarpal, Martens, van Hasselt,
Pascanu, Dabney, "Normalization and effective learning rates in reinforcement learning",
NeurIPS 2024 (arXiv 2407.01800).

A weight W that feeds a normalization layer is scale invariant, f(cW) = f(W) for c > 0, so its
gradient is orthogonal to W and SGD only grows ||W||; the direction W/||W|| then moves with the
effective learning rate eta / ||W||^2 (eta / ||W|| for Adam-like, scale-free updates). Norm growth
is an implicit, uncontrolled learning-rate decay. NaP fixes the norm: after every optimizer step
each selected tensor is rescaled to its norm at initialization (per tensor, Frobenius),

    W <- W * ||W_0||_F / ||W||_F,

so the effective learning rate is whatever the schedule says. Optax emits deltas, so the transform
returns u' = proj(p + u) - p: place it LAST in the chain (after the learning-rate scaling), and call
update with `params`. The normalization itself is a model concern (paperlab.nn `norm=...`).

Which tensors (the default mask, `feeds_norm_mask`). paperlab.nn names a normalization layer that
directly follows a layer `<name>` (a Linear or Conv with a `kernel`) as the sibling `<name>_norm`
in the same module, e.g. 'linear' / 'linear_norm', 'conv1' / 'conv1_norm'. The default mask selects
every `kernel` of a module `<name>` with a sibling `<name>_norm`. Norms named otherwise (after a
residual sum, `norm_final`, ...) pair with nothing, and layers not followed by a norm (the head) are
not projected: for them the projection would change the network function.

Choices where the paper is silent (options, our defaults first):
- bias='joint' | 'free'. LN(x W + b) is invariant under the joint scaling (W, b) -> (cW, cb), not
  under W alone, so by default a selected kernel and its module's `bias` are projected together
  to their joint initial norm. paperlab.nn drops the bias before a norm, where both agree.
- norm_params='free' | 'project_joint' | 'frozen': the scale and offset of the paired norm layer
  `<name>_norm`. 'free': the optimizer updates them as usual. 'project_joint': the concatenated
  (scale, offset) vector of each paired norm is projected back to its own initial norm (sqrt(d)
  for scale = 1, offset = 0). With a positively homogeneous activation (ReLU) a joint rescaling of
  (scale, offset) is absorbed by the next normalized layer. 'frozen': they keep their initial
  values. The one public port (RLE-Foundation/Plasticine) gets this wrong: it selects parameters by
  the substring 'weight', so LayerNorm gains inside nn.Sequential are projected one by one as if
  they were weight matrices, and its (scale, offset) branch uses the fixed target sqrt(2) instead of
  the initial joint norm.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from paperlab.errors import ConfigError
from paperlab.optim import paths

NORM_PARAMS = ('free', 'project_joint', 'frozen')
BIAS_MODES = ('joint', 'free')
NORM_SUFFIX = '_norm'


def _prefixes(all_paths: list[paths.Path]) -> set[paths.Path]:
  return {p[:i] for p in all_paths for i in range(len(p) + 1)}


def norm_of(path: paths.Path, prefixes: set[paths.Path]) -> paths.Path | None:
  """The path of the sibling `<name>_norm` of the module holding the kernel at `path`, or None."""
  if len(path) < 2 or path[-1] != 'kernel' or not isinstance(path[-2], str):
    return None
  sibling = path[:-2] + (path[-2] + NORM_SUFFIX,)
  return sibling if sibling in prefixes else None


def feeds_norm_mask(params: Any) -> Any:
  """True at every `kernel` of a module `<name>` with a sibling `<name>_norm` (see docstring)."""
  prefixes = _prefixes(paths.leaf_paths(params))
  return paths.mask_from_paths(params, lambda p, _: norm_of(p, prefixes) is not None)


class NapState(NamedTuple):
  init_norms: jax.Array  # float32 [num_groups]: the Frobenius norm of each projected group at init


def _plan(params: Any, mask: paths.MaskOrFn, norm_params: str, bias: str):
  """(groups, frozen): lists of leaf indices projected jointly, and leaf indices kept frozen."""
  all_paths = paths.leaf_paths(params)
  index = {p: i for i, p in enumerate(all_paths)}
  prefixes = _prefixes(all_paths)
  flags = paths.resolve_mask(mask, params)
  groups, frozen, taken = [], [], set()
  for i, selected in enumerate(flags):
    if not selected or i in taken:
      continue
    path = all_paths[i]
    group = [i]
    bias_path = path[:-1] + ('bias',)
    if bias == 'joint' and path[-1] == 'kernel' and bias_path in index:
      group.append(index[bias_path])
    groups.append(group)
    taken.update(group)
    norm_path = norm_of(path, prefixes)
    if norm_path is None or norm_params == 'free':
      continue
    norm_leaves = [j for j, q in enumerate(all_paths) if q[:len(norm_path)] == norm_path]
    if norm_params == 'project_joint':
      groups.append(norm_leaves)
    else:
      frozen.extend(norm_leaves)
    taken.update(norm_leaves)
  return groups, frozen


def _group_norm(leaves: list[jax.Array]) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def nap_projection(*, mask: paths.MaskOrFn | None = None, norm_params: str = 'free',
                   bias: str = 'joint') -> optax.GradientTransformation:
  """Projects each selected tensor back to its initial Frobenius norm; see the module docstring.

  Args:
    mask: bool tree like params (or a prefix, or params -> tree) selecting the kernels to project;
      default `feeds_norm_mask`.
    norm_params: 'free' | 'project_joint' | 'frozen', for the paired `<name>_norm` scale/offset.
    bias: 'joint' | 'free', whether a selected kernel's `bias` is projected with it.
  """
  if norm_params not in NORM_PARAMS:
    raise ConfigError(f'nap norm_params={norm_params!r} is not valid;'
                      f' valid: {", ".join(NORM_PARAMS)}')
  if bias not in BIAS_MODES:
    raise ConfigError(f'nap bias={bias!r} is not valid; valid: {", ".join(BIAS_MODES)}')
  mask = feeds_norm_mask if mask is None else mask

  def init_fn(params):
    groups, _ = _plan(params, mask, norm_params, bias)
    if not groups:
      raise ConfigError('nap: no parameter to project; the default mask needs kernels followed'
                        ' by a normalization layer (a module <name> with a sibling <name>_norm,'
                        ' e.g. model.norm=layernorm)')
    leaves = jax.tree.leaves(params)
    norms = [_group_norm([leaves[i] for i in g]) for g in groups]
    return NapState(init_norms=jnp.stack(norms).astype(jnp.float32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('nap_projection needs the parameters: call tx.update(grads, state, params)')
    groups, frozen = _plan(params, mask, norm_params, bias)
    p_leaves = jax.tree.leaves(params)
    u_leaves, treedef = jax.tree.flatten(updates)
    out = list(u_leaves)
    for k, group in enumerate(groups):
      new = [p_leaves[i].astype(jnp.float32) + u_leaves[i].astype(jnp.float32) for i in group]
      scale = state.init_norms[k] / jnp.maximum(_group_norm(new), jnp.finfo(jnp.float32).tiny)
      for i, x in zip(group, new):
        out[i] = (x * scale - p_leaves[i].astype(jnp.float32)).astype(u_leaves[i].dtype)
    for i in frozen:
      out[i] = jnp.zeros_like(u_leaves[i])
    return jax.tree.unflatten(treedef, out), state

  return optax.GradientTransformation(init_fn, update_fn)


def effective_learning_rates(params: Any, lr, *, mask: paths.MaskOrFn | None = None,
                             scale_free: bool = False) -> dict[str, jax.Array]:
  """eta / ||W||_F^2 per selected kernel (eta / ||W||_F with scale_free=True, for Adam-like
  updates), keyed by the kernel's path 'a/0/linear/kernel'. Default mask: `feeds_norm_mask`."""
  flags = paths.resolve_mask(feeds_norm_mask if mask is None else mask, params)
  out = {}
  for path, leaf, selected in zip(paths.leaf_paths(params), jax.tree.leaves(params), flags):
    if selected:
      norm = _group_norm([leaf])
      out[paths.path_str(path)] = lr / (norm if scale_free else jnp.square(norm))
  return out
