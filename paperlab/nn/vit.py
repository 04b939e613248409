"""Vision Transformer classifier (Dosovitskiy et al. 2021), small enough for CPU tests.

  tokens = patch_embed(x)           Conv, kernel = stride = patch_size, VALID: one token per patch
  [cls_token;] tokens + pos_embed   learned positions (N(0, 0.02^2)), cls token zero-initialized
  encoder blocks                    bidirectional softmax attention, pre-LN by default
  Norm (pre/peri), pool ('mean' over tokens | 'cls' token), Dense head

The patch embedding is the first layer TrAct (Petersen et al. 2024) preconditions: `tract_spec`
is conv with kernel_size = strides = (patch_size, patch_size) and padding VALID, identical to a
Dense layer on flattened (ph, pw, C) patches.
"""
import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from paperlab.errors import ConfigError
from paperlab.nn import activations, attention as attention_lib, block, convnet, fields, norms
from paperlab.nn.first_layer import TractSpec

NAME = 'vit'
POOLS = ('mean', 'cls')
VIT_NORMS = ('layernorm', 'rmsnorm')
POS_EMBED_STD = 0.02


class ViT(nnx.Module):
  """x [B, H, W, C] (or [B, H, W]) -> logits [B, output_dim]; see the module docstring."""

  def __init__(self, image_shape: tuple[int, int, int], output_dim: int, *, patch_size: int = 4,
               d_model: int = 128, num_layers: int = 4, num_heads: int = 4,
               mlp_ratio: float = 4.0, pool: str = 'mean', norm: str = 'layernorm',
               norm_placement: str = 'pre', activation: str = 'gelu', rngs: nnx.Rngs):
    h, w, c = image_shape
    if h % patch_size or w % patch_size:
      raise ConfigError(f'image size {h}x{w} is not divisible by model.patch_size={patch_size}')
    fields.choice(NAME, 'pool', pool, POOLS)
    fields.choice(NAME, 'norm_placement', norm_placement, block.PLACEMENTS)
    self.image_shape = tuple(image_shape)
    self.patch_size = patch_size
    self.pool = pool
    p = patch_size
    self.patch_embed = nnx.Conv(c, d_model, (p, p), strides=(p, p), padding='VALID', rngs=rngs)
    num_tokens = (h // p) * (w // p) + (pool == 'cls')
    self.cls_token = nnx.Param(jnp.zeros((1, d_model))) if pool == 'cls' else None
    init = nnx.initializers.normal(POS_EMBED_STD)
    self.pos_embed = nnx.Param(init(rngs.params(), (num_tokens, d_model)))
    self.blocks = nnx.List([
        block.ResidualBlock(
            d_model,
            attention=attention_lib.SoftmaxAttention(d_model, num_heads, causal=False,
                                                     rngs=rngs),
            mlp_hidden=max(1, round(mlp_ratio * d_model)), activation=activation, norm=norm,
            placement=norm_placement, rngs=rngs)
        for _ in range(num_layers)])
    has_final = norm_placement in ('pre', 'peri')
    self.norm_final = norms.make_norm(norm, d_model, rngs=rngs) if has_final else None
    self.head = nnx.Linear(d_model, output_dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[:1] + self.image_shape).astype(jnp.float32)
    t = self.patch_embed(x)
    t = t.reshape(t.shape[0], -1, t.shape[-1])
    if self.cls_token is not None:
      cls = jnp.broadcast_to(self.cls_token[...], (t.shape[0],) + self.cls_token.shape)
      t = jnp.concatenate([cls, t], axis=1)
    t = t + self.pos_embed[...]
    for layer in self.blocks:
      t = layer(t)
    t = norms.apply_norm(self.norm_final, t)
    pooled = t[:, 0] if self.pool == 'cls' else t.mean(axis=1)
    return self.head(pooled)

  @property
  def tract_spec(self) -> TractSpec:
    p = self.patch_size
    return TractSpec.conv(('patch_embed', 'kernel'), kernel_size=(p, p), strides=(p, p),
                          padding='VALID', image_shape=self.image_shape)


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=NAME,
      patch_size=4,
      d_model=128,
      num_layers=4,
      num_heads=4,
      mlp_ratio=4.0,
      pool='mean',               # mean | cls
      norm='layernorm',          # layernorm | rmsnorm
      norm_placement='pre',      # pre | post | peri
      activation='gelu',
  ))


def from_config(cfg: ml_collections.ConfigDict, *, input_shape: tuple[int, ...], input_dtype,
                vocab_size: int | None, output_dim: int, rngs: nnx.Rngs) -> ViT:
  del input_dtype
  fields.no_tokens(NAME, vocab_size)
  image_shape = convnet.image_shape_of(NAME, input_shape)
  for field in ('patch_size', 'd_model', 'num_layers', 'num_heads'):
    fields.positive_int(NAME, field, cfg[field])
  h, w, _ = image_shape
  if h % cfg.patch_size or w % cfg.patch_size:
    raise ConfigError(f'image size {h}x{w} is not divisible by'
                      f' model.patch_size={cfg.patch_size}')
  if cfg.d_model % cfg.num_heads:
    raise ConfigError(f'model.d_model={cfg.d_model} must be divisible by'
                      f' model.num_heads={cfg.num_heads}')
  fields.positive_number(NAME, 'mlp_ratio', cfg.mlp_ratio)
  fields.choice(NAME, 'pool', cfg.pool, POOLS)
  fields.choice(NAME, 'norm', cfg.norm, VIT_NORMS)
  fields.choice(NAME, 'norm_placement', cfg.norm_placement, block.PLACEMENTS)
  fields.choice(NAME, 'activation', cfg.activation, activations.ACTIVATIONS)
  return ViT(image_shape, output_dim, patch_size=cfg.patch_size, d_model=cfg.d_model,
             num_layers=cfg.num_layers, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
             pool=cfg.pool, norm=cfg.norm, norm_placement=cfg.norm_placement,
             activation=cfg.activation, rngs=rngs)
