"""MLP classifier with configurable init and optional normalization before each activation.

Serves two papers:
- Gradient noise (Neelakantan et al. 2015): the deep narrow MLP trained from "Simple Init"
  N(0, init_std^2), He init or all zeros (`init`, `init_std`, `bias_init`; see inits.py).
- NaP (Lyle et al. 2024): "normalize" inserts a norm on every hidden pre-activation,
  h_{l+1} = act(Norm(W_l h_l [+ b_l])), so each hidden kernel feeds a norm (`norm`).

Choice (paperlab's, not the papers'): `use_bias` defaults to True without a norm and to False with
one. The norm's offset then plays the bias's role, and Norm(c W h) = Norm(W h) holds exactly for
every c > 0, which is the scale invariance NaP's projection relies on. The head always has a bias.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict
from flax import nnx

from paperlab.nn import activations, fields, inits, norms
from paperlab.nn.first_layer import TractSpec

NAME = 'mlp'
MLP_NORMS = ('none', 'layernorm', 'rmsnorm')


class DenseLayer(nnx.Module):
  """act(Norm(linear(x))); the norm is the sibling `linear_norm` (NaP naming convention)."""

  def __init__(self, in_features: int, out_features: int, *, activation: str, norm: str,
               use_bias: bool, kernel_init, bias_init, rngs: nnx.Rngs):
    self.linear = nnx.Linear(in_features, out_features, use_bias=use_bias,
                             kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)
    self.linear_norm = norms.make_norm(norm, out_features, rngs=rngs)
    self.activation = activations.get_activation(activation)

  def __call__(self, x: jax.Array, preact_offset: jax.Array | None = None) -> jax.Array:
    z = self.linear(x)
    if preact_offset is not None:  # zero; its gradient is dL/dz (first_layer.py)
      z = z + preact_offset.reshape(z.shape)
    return self.activation(norms.apply_norm(self.linear_norm, z))


class MLP(nnx.Module):
  """Flattens the trailing `len(input_shape)` axes, `depth` hidden layers of `width`, a Dense head.

  x [..., *input_shape] -> logits [..., output_dim]. `depth=0` is a linear model.
  """

  def __init__(self, input_shape: tuple[int, ...], output_dim: int, *, depth: int = 2,
               width: int = 128, activation: str = 'relu', init: str = 'lecun',
               init_std: float = 0.1, bias_init: str = 'zeros', norm: str = 'none',
               use_bias: bool | None = None, rngs: nnx.Rngs):
    fields.choice(NAME, 'norm', norm, MLP_NORMS)
    self.input_rank = len(input_shape)
    self.in_features = math.prod(input_shape)
    kernel_init = inits.kernel_init(init, init_std)
    bias_init_fn = inits.bias_init(bias_init, init_std)
    if use_bias is None:
      use_bias = norm == 'none'
    widths = [self.in_features] + [width] * depth
    self.hidden = nnx.List([
        DenseLayer(n_in, n_out, activation=activation, norm=norm, use_bias=use_bias,
                   kernel_init=kernel_init, bias_init=bias_init_fn, rngs=rngs)
        for n_in, n_out in zip(widths[:-1], widths[1:])])
    self.head = nnx.Linear(widths[-1], output_dim, kernel_init=kernel_init,
                           bias_init=bias_init_fn, rngs=rngs)

  def __call__(self, x: jax.Array, *, tract_preact_offset: jax.Array | None = None) -> jax.Array:
    """tract_preact_offset: [b, m] added to the first layer's pre-activation (TractSpec)."""
    h = x.reshape(x.shape[:x.ndim - self.input_rank] + (self.in_features,)).astype(jnp.float32)
    for i, layer in enumerate(self.hidden):
      h = layer(h, tract_preact_offset if i == 0 else None)
    out = self.head(h)
    if tract_preact_offset is not None and not len(self.hidden):
      out = out + tract_preact_offset.reshape(out.shape)
    return out

  @property
  def tract_spec(self) -> TractSpec:
    path = ('hidden', 0, 'linear', 'kernel') if len(self.hidden) else ('head', 'kernel')
    return TractSpec.dense(path, self.in_features, preact_offset=True)


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=NAME,
      depth=2,                 # hidden layers
      width=128,
      activation='relu',
      init='lecun',            # lecun | he | simple (N(0, init_std^2)) | zeros
      init_std=0.1,            # std of 'simple' init (kernels and, with bias_init=simple, biases)
      bias_init='zeros',       # zeros | simple
      norm='none',             # none | layernorm | rmsnorm, before each activation (NaP)
      use_bias=config_dict.placeholder(bool),  # unset: True iff norm == 'none'
  ))


def from_config(cfg: ml_collections.ConfigDict, *, input_shape: tuple[int, ...], input_dtype,
                vocab_size: int | None, output_dim: int, rngs: nnx.Rngs) -> MLP:
  del input_dtype  # any numeric input is cast to float32
  fields.no_tokens(NAME, vocab_size)
  fields.positive_int(NAME, 'depth', cfg.depth, allow_zero=True)
  fields.positive_int(NAME, 'width', cfg.width)
  fields.choice(NAME, 'activation', cfg.activation, activations.ACTIVATIONS)
  fields.choice(NAME, 'init', cfg.init, inits.KERNEL_INITS)
  fields.choice(NAME, 'bias_init', cfg.bias_init, inits.BIAS_INITS)
  fields.positive_number(NAME, 'init_std', cfg.init_std)
  fields.choice(NAME, 'norm', cfg.norm, MLP_NORMS)
  return MLP(tuple(input_shape), output_dim, depth=cfg.depth, width=cfg.width,
             activation=cfg.activation, init=cfg.init, init_std=cfg.init_std,
             bias_init=cfg.bias_init, norm=cfg.norm, use_bias=cfg.use_bias, rngs=rngs)
