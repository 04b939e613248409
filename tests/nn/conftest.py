"""Tiny model configs shared by the tests/nn files.

Every random initializer compiles once per parameter shape, seconds each with threefry on a busy
2-core CPU. So the tests build models from a few shapes (width 8 everywhere, mlp_ratio 1), with
'rbg' keys (faster to compile; the init distributions are the same), and run them jitted (eager
NNX compiles every op separately, which is slower than one jit here). tests/nn/test_inits.py
checks the init statistics with the default threefry keys.
"""
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import paperlab.nn as pnn

D = 8
OUTPUT_DIM = 5
SEQ_LEN = 6
VOCAB = 11
SEQ_BLOCK = dict(num_layers=1, d_model=D, num_heads=2, mlp_ratio=1.0)

# key -> (model name, config overrides, per-example input_shape, input dtype, vocab_size)
TINY = {
    'mlp': ('mlp', dict(depth=2, width=D), (2, 4), jnp.float32, None),
    'cnn': ('cnn', dict(widths=(D, D), num_groups=4), (8, 8, 3), jnp.float32, None),
    'vit': ('vit', dict(patch_size=4, **SEQ_BLOCK), (8, 8, 3), jnp.float32, None),
    'transformer_tokens': ('transformer', SEQ_BLOCK, (SEQ_LEN,), jnp.int32, VOCAB),
    'transformer_floats': ('transformer', SEQ_BLOCK, (SEQ_LEN, 3), jnp.float32, None),
}


def rbg_key(seed: int = 0) -> jax.Array:
  return jax.random.key(seed, impl='rbg')


def rngs(seed: int = 0) -> nnx.Rngs:
  return nnx.Rngs(rbg_key(seed))


def normal(shape, seed: int = 0) -> jax.Array:
  return jax.random.normal(rbg_key(seed), shape)


def functional(model: nnx.Module):
  """(apply, params): apply(params, x) is the jitted merged call, params the pure dict."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  apply = jax.jit(lambda p, x: nnx.merge(graphdef, p, rest)(x))
  return apply, nnx.to_pure_dict(params)


def perturbed(params, scale: float = 0.3, seed: int = 2):
  """params + N(0, scale^2) noise on every leaf, so unit norm scales and zero biases are not
  special and a reference that forgets one of them fails."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(rbg_key(seed), len(leaves))
  noisy = [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, noisy)


class Tiny:
  """The fixture: tiny configs, inputs, and the helpers above (test files cannot import a
  conftest by name reliably, there are two)."""
  keys = tuple(TINY)
  D = D
  rbg_key = staticmethod(rbg_key)
  rngs = staticmethod(rngs)
  normal = staticmethod(normal)
  functional = staticmethod(functional)
  perturbed = staticmethod(perturbed)

  def config(self, key, **overrides):
    name, fields, *_ = TINY[key]
    cfg = pnn.default_config(name)
    cfg.update({**fields, **overrides})
    return cfg

  def build(self, key, seed=0, **overrides):
    _, _, shape, dtype, vocab = TINY[key]
    return pnn.build(self.config(key, **overrides), input_shape=shape, input_dtype=dtype,
                     vocab_size=vocab, output_dim=OUTPUT_DIM, rngs=rngs(seed))

  def input(self, key, batch=2, seed=1):
    _, _, shape, dtype, vocab = TINY[key]
    rng = rbg_key(seed)
    if vocab:
      return jax.random.randint(rng, (batch,) + shape, 0, vocab, dtype)
    return jax.random.normal(rng, (batch,) + shape, dtype)

  def output_shape(self, key, batch=2):
    _, _, shape, _, _ = TINY[key]
    return (batch,) + ((shape[0],) if key.startswith('transformer') else ()) + (OUTPUT_DIM,)


@pytest.fixture(scope='session')
def tiny() -> Tiny:
  return Tiny()
