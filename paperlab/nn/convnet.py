"""A small ResNet-style convnet: stem conv -> residual stages -> global average pool -> Dense head.

The stem is the first layer TrAct (Petersen et al. 2024) preconditions (`tract_spec`, kind conv);
with kernel 3, stride 1 and SAME padding it is the CIFAR-ResNet `conv1` of the TrAct paper.

Residual block (He et al. 2016, v1 "basic" block; the first block of every stage after the first
halves the resolution with stride 2 and a 1x1 projection shortcut):

  h = act(Norm(conv1(x))); h = Norm(conv2(h)); y = act(h + shortcut(x))

`norm` ('none' | 'groupnorm' | 'layernorm' | 'rmsnorm', never BatchNorm) follows every conv, named
`<conv>_norm` for NaP (Lyle et al. 2024). As in the MLP, convs carry a bias only without a norm,
which keeps each normalized kernel exactly scale invariant.
"""
import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from paperlab.errors import ConfigError
from paperlab.nn import activations, fields, inits, norms
from paperlab.nn.first_layer import TractSpec

NAME = 'cnn'
CNN_NORMS = ('none', 'groupnorm', 'layernorm', 'rmsnorm')
CONV_INITS = ('lecun', 'he')


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, *, use_bias: bool, kernel_init,
          rngs: nnx.Rngs) -> nnx.Conv:
  return nnx.Conv(in_ch, out_ch, (kernel, kernel), strides=(stride, stride), padding='SAME',
                  use_bias=use_bias, kernel_init=kernel_init, rngs=rngs)


class ResidualBlock(nnx.Module):
  """Basic residual block; shortcut is identity, or a 1x1 conv when the shape changes."""

  def __init__(self, in_ch: int, out_ch: int, stride: int, *, norm: str, num_groups: int,
               activation: str, kernel_init, rngs: nnx.Rngs):
    use_bias = norm == 'none'
    conv = lambda i, o, k, s: _conv(i, o, k, s, use_bias=use_bias, kernel_init=kernel_init,
                                    rngs=rngs)
    make_norm = lambda: norms.make_norm(norm, out_ch, num_groups=num_groups, rngs=rngs)
    self.conv1 = conv(in_ch, out_ch, 3, stride)
    self.conv1_norm = make_norm()
    self.conv2 = conv(out_ch, out_ch, 3, 1)
    self.conv2_norm = make_norm()
    if stride != 1 or in_ch != out_ch:
      self.shortcut = conv(in_ch, out_ch, 1, stride)
      self.shortcut_norm = make_norm()
    else:
      self.shortcut = None
      self.shortcut_norm = None
    self.activation = activations.get_activation(activation)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.activation(norms.apply_norm(self.conv1_norm, self.conv1(x)))
    h = norms.apply_norm(self.conv2_norm, self.conv2(h))
    if self.shortcut is not None:
      x = norms.apply_norm(self.shortcut_norm, self.shortcut(x))
    return self.activation(h + x)


class ConvNet(nnx.Module):
  """x [B, H, W, C] (or [B, H, W], read as C = 1) -> logits [B, output_dim]."""

  def __init__(self, image_shape: tuple[int, int, int], output_dim: int, *,
               widths: tuple[int, ...] = (16, 32, 64), blocks_per_stage: int = 1,
               stem_kernel_size: int = 3, stem_stride: int = 1, norm: str = 'groupnorm',
               num_groups: int = 8, activation: str = 'relu', init: str = 'he',
               rngs: nnx.Rngs):
    fields.choice(NAME, 'norm', norm, CNN_NORMS)
    self.image_shape = tuple(image_shape)
    self.stem_kernel_size = stem_kernel_size
    self.stem_stride = stem_stride
    kernel_init = inits.kernel_init(init)
    use_bias = norm == 'none'
    self.stem = _conv(image_shape[-1], widths[0], stem_kernel_size, stem_stride,
                      use_bias=use_bias, kernel_init=kernel_init, rngs=rngs)
    self.stem_norm = norms.make_norm(norm, widths[0], num_groups=num_groups, rngs=rngs)
    blocks = []
    in_ch = widths[0]
    for stage, out_ch in enumerate(widths):
      for i in range(blocks_per_stage):
        stride = 2 if stage > 0 and i == 0 else 1
        blocks.append(ResidualBlock(in_ch, out_ch, stride, norm=norm, num_groups=num_groups,
                                    activation=activation, kernel_init=kernel_init, rngs=rngs))
        in_ch = out_ch
    self.blocks = nnx.List(blocks)
    self.activation = activations.get_activation(activation)
    self.head = nnx.Linear(widths[-1], output_dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[:1] + self.image_shape).astype(jnp.float32)
    h = self.activation(norms.apply_norm(self.stem_norm, self.stem(x)))
    for block in self.blocks:
      h = block(h)
    return self.head(h.mean(axis=(1, 2)))

  @property
  def tract_spec(self) -> TractSpec:
    k, s = self.stem_kernel_size, self.stem_stride
    return TractSpec.conv(('stem', 'kernel'), kernel_size=(k, k), strides=(s, s),
                          padding='SAME', image_shape=self.image_shape)


def image_shape_of(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
  """(H, W, C) from a per-example input shape (H, W, C) or (H, W)."""
  input_shape = tuple(input_shape)
  if len(input_shape) == 2:
    return input_shape + (1,)
  if len(input_shape) == 3:
    return input_shape
  raise ConfigError(f'model {model!r} needs images of per-example shape (H, W, C) or (H, W);'
                    f' the data gives {input_shape}')


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=NAME,
      widths=(16, 32, 64),     # channels per stage; every stage after the first halves H and W
      blocks_per_stage=1,
      stem_kernel_size=3,
      stem_stride=1,
      norm='groupnorm',        # none | groupnorm | layernorm | rmsnorm, after every conv
      num_groups=8,            # groupnorm only; must divide every width
      activation='relu',
      init='he',               # lecun | he (conv kernels)
  ))


def from_config(cfg: ml_collections.ConfigDict, *, input_shape: tuple[int, ...], input_dtype,
                vocab_size: int | None, output_dim: int, rngs: nnx.Rngs) -> ConvNet:
  del input_dtype
  fields.no_tokens(NAME, vocab_size)
  image_shape = image_shape_of(NAME, input_shape)
  widths = tuple(cfg.widths) if isinstance(cfg.widths, (tuple, list)) else None
  if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
    raise ConfigError(f'model.widths={cfg.widths!r} for model {NAME!r} must be a non-empty'
                      ' tuple of ints > 0')
  fields.positive_int(NAME, 'blocks_per_stage', cfg.blocks_per_stage)
  fields.positive_int(NAME, 'stem_kernel_size', cfg.stem_kernel_size)
  fields.positive_int(NAME, 'stem_stride', cfg.stem_stride)
  fields.choice(NAME, 'norm', cfg.norm, CNN_NORMS)
  fields.choice(NAME, 'activation', cfg.activation, activations.ACTIVATIONS)
  fields.choice(NAME, 'init', cfg.init, CONV_INITS)
  if cfg.norm == 'groupnorm':
    fields.positive_int(NAME, 'num_groups', cfg.num_groups)
    if any(w % cfg.num_groups for w in widths):
      raise ConfigError(f'model.num_groups={cfg.num_groups} must divide every width in'
                        f' model.widths={widths} for norm=groupnorm')
  return ConvNet(image_shape, output_dim, widths=widths, blocks_per_stage=cfg.blocks_per_stage,
                 stem_kernel_size=cfg.stem_kernel_size, stem_stride=cfg.stem_stride,
                 norm=cfg.norm, num_groups=cfg.num_groups, activation=cfg.activation,
                 init=cfg.init, rngs=rngs)
