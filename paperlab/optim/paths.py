"""Parameter-tree paths and masks shared by the transforms (no paper math here).

paperlab params are plain nested dicts (`nnx.to_pure_dict`): str keys for attributes, int keys for
list entries, e.g. {'hidden': {0: {'linear': {'kernel': ...}}}, 'head': {...}}. A path is the tuple
of keys from the root to a leaf, e.g. ('hidden', 0, 'linear', 'kernel'). The helpers also work on
any other pytree whose key paths are dict keys, sequence indices or attribute names.
"""
from typing import Any, Callable, Hashable

import jax

Path = tuple[Hashable, ...]
MaskOrFn = Any  # a pytree of bools (same structure as params, or a prefix of it) or params -> one


def key_of(entry: Any) -> Hashable:
  """The plain key of one jax key-path entry (DictKey, SequenceKey, GetAttrKey, ...)."""
  for attr in ('key', 'idx', 'name'):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return str(entry)


def leaf_paths(tree: Any) -> list[Path]:
  """The path of every leaf, in `jax.tree.leaves` order."""
  with_path, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [tuple(key_of(k) for k in path) for path, _ in with_path]


def path_str(path: Path) -> str:
  """'hidden/0/linear/kernel' for logging and error messages."""
  return '/'.join(str(k) for k in path)


def resolve_mask(mask: MaskOrFn, tree: Any) -> list[bool]:
  """One bool per leaf of `tree` (leaves order) from a mask tree, a prefix of one, or a callable."""
  if callable(mask):
    mask = mask(tree)
  flags = jax.tree.map(
      lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask, tree)
  return [bool(f) for f in jax.tree.leaves(flags)]


def leaf_at(tree: Any, path: Path) -> Any:
  """The leaf of the nested dict/list `tree` at `path`."""
  for key in path:
    tree = tree[key]
  return tree


def with_leaf(tree: Any, path: Path, value: Any) -> Any:
  """A copy of the nested dict `tree` with the leaf at `path` replaced (the rest shared)."""
  if not path:
    return value
  return {**tree, path[0]: with_leaf(tree[path[0]], path[1:], value)}


def mask_at(tree: Any, path: Path) -> Any:
  """A bool tree shaped like `tree`, True only at the leaf at `path`; KeyError if absent."""
  paths = leaf_paths(tree)
  path = tuple(path)
  if path not in paths:
    raise KeyError(path)
  flags = [p == path for p in paths]
  return jax.tree.unflatten(jax.tree.structure(tree), flags)


def mask_from_paths(tree: Any, predicate: Callable[[Path, Any], bool]) -> Any:
  """A bool tree shaped like `tree`: predicate(path, leaf) per leaf."""
  leaves = jax.tree.leaves(tree)
  flags = [bool(predicate(p, x)) for p, x in zip(leaf_paths(tree), leaves)]
  return jax.tree.unflatten(jax.tree.structure(tree), flags)
