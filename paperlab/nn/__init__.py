"""paperlab.nn: Flax NNX models chosen by `config.model.name`, used functionally by the trainer.

  cfg = paperlab.nn.default_config('vit')         # every field, with defaults
  model = paperlab.nn.build(cfg, input_shape=(32, 32, 3), input_dtype=jnp.float32,
                            vocab_size=None, output_dim=10, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  logits = nnx.merge(graphdef, nnx.to_pure_dict(params), rest)(x)   # inside jit
  model.tract_spec                                 # the first layer, for TrAct (or None)

Models: 'mlp' (mlp.py), 'cnn' (convnet.py), 'vit' (vit.py), 'transformer' (transformer.py).
They hold no RNGs and no batch statistics: the forward pass is a pure function of params and x.
"""
from types import ModuleType
from typing import Any

import ml_collections
from flax import nnx

from paperlab.errors import ConfigError, unknown_name_error
from paperlab.nn import convnet, mlp, transformer, vit
from paperlab.nn.attention import ATTENTION, SoftmaxAttention, get_attention
from paperlab.nn.first_layer import TractSpec

# name -> module with default_config() and from_config(cfg, *, input_shape, input_dtype,
# vocab_size, output_dim, rngs).
MODELS: dict[str, ModuleType] = {
    'mlp': mlp,
    'cnn': convnet,
    'vit': vit,
    'transformer': transformer,
}


def _lookup(name: Any) -> ModuleType:
  if name not in MODELS:
    raise unknown_name_error('model', name, MODELS)
  return MODELS[name]


def default_config(name: str) -> ml_collections.ConfigDict:
  """Every field of model `name`, with its default (optional fields are placeholders)."""
  return _lookup(name).default_config()


def resolve_config(model_config: ml_collections.ConfigDict | dict) -> ml_collections.ConfigDict:
  """`model_config` completed with the defaults of its model; ConfigError on an unknown field."""
  name = model_config.get('name')
  defaults = default_config(name)
  for key in model_config.keys():
    if key not in defaults:
      raise ConfigError(f'unknown field model.{key} for model {name!r};'
                        f' valid: {", ".join(sorted(defaults.keys()))}')
  resolved = ml_collections.ConfigDict(
      {key: model_config[key] if key in model_config else defaults[key] for key in defaults})
  return resolved


def build(model_config: ml_collections.ConfigDict | dict, *, input_shape: tuple[int, ...],
          input_dtype, vocab_size: int | None, output_dim: int, rngs: nnx.Rngs) -> nnx.Module:
  """The model named by `model_config.name`, for per-example inputs of `input_shape`.

  Raises ConfigError for an unknown name, an unknown field or a bad value.
  """
  cfg = resolve_config(model_config)
  return _lookup(cfg.name).from_config(
      cfg, input_shape=tuple(input_shape), input_dtype=input_dtype, vocab_size=vocab_size,
      output_dim=output_dim, rngs=rngs)


__all__ = ['ATTENTION', 'MODELS', 'SoftmaxAttention', 'TractSpec', 'build', 'default_config',
           'get_attention', 'resolve_config']
