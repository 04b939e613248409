"""Causal transformer sequence model with pre/post/peri normalization and a pluggable attention.

x [B, L] int tokens (when vocab_size is set) or [B, L, d_in] floats -> outputs [B, L, output_dim]:

  h_0 = embed(x) [+ pos_embed[:L]];  h_0 = Norm(h_0) if embed_norm
  h_l = ResidualBlock_l(h_{l-1})    (placement formulas in block.py)
  out = head(Norm(h_L)) for pre/peri, head(h_L) for post

`embed` is a token embedding (`token_embed`) or a Dense input projection (`input_proj`, the first
layer TrAct sees: `tract_spec` is dense on it, None for token inputs). The attention slot takes
any name in paperlab.nn.attention.ATTENTION ('softmax', 'linear', 'delta'), built as
`Cls(d_model, num_heads, rngs=rngs, **attention_kwargs)`.

Peri-LN (Kim et al. 2025) optionally normalizes the embedding; the paper's default is not settled
(research notes), so `embed_norm` is an option, off by default.
"""
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict
from flax import nnx

from paperlab.errors import ConfigError
from paperlab.nn import activations, attention as attention_lib, block, fields, norms
from paperlab.nn.first_layer import TractSpec

NAME = 'transformer'
SEQ_NORMS = ('layernorm', 'rmsnorm')
POSITIONAL = ('learned', 'none')
POS_EMBED_STD = 0.02


class Transformer(nnx.Module):
  """Decoder-only causal transformer; see the module docstring for the computation."""

  def __init__(self, output_dim: int, *, vocab_size: int | None = None,
               in_features: int | None = None, num_layers: int = 2, d_model: int = 128,
               num_heads: int = 4, mlp_ratio: float = 4.0, activation: str = 'gelu',
               norm: str = 'layernorm', norm_placement: str = 'pre', embed_norm: bool = False,
               positional: str = 'learned', max_len: int | None = None,
               attention: str = 'softmax', attention_kwargs: dict | None = None,
               rngs: nnx.Rngs):
    if (vocab_size is None) == (in_features is None):
      raise ValueError('give exactly one of vocab_size (tokens) and in_features (floats)')
    fields.choice(NAME, 'positional', positional, POSITIONAL)
    fields.choice(NAME, 'norm_placement', norm_placement, block.PLACEMENTS)
    if positional == 'learned' and max_len is None:
      raise ConfigError("positional='learned' needs model.max_len")
    self.in_features = in_features
    self.max_len = max_len
    if vocab_size is not None:
      self.token_embed = nnx.Embed(vocab_size, d_model, rngs=rngs)
      self.input_proj = None
    else:
      self.token_embed = None
      self.input_proj = nnx.Linear(in_features, d_model, rngs=rngs)
    if positional == 'learned':
      init = nnx.initializers.normal(POS_EMBED_STD)
      self.pos_embed = nnx.Param(init(rngs.params(), (max_len, d_model)))
    else:
      self.pos_embed = None
    self.norm_embed = norms.make_norm(norm, d_model, rngs=rngs) if embed_norm else None
    attn_cls = attention_lib.get_attention(attention)
    attention_kwargs = dict(attention_kwargs or {})
    attention_lib.check_kwargs(attention, attn_cls, attention_kwargs)
    self.blocks = nnx.List([
        block.ResidualBlock(
            d_model, attention=attn_cls(d_model, num_heads, rngs=rngs, **attention_kwargs),
            mlp_hidden=max(1, round(mlp_ratio * d_model)), activation=activation, norm=norm,
            placement=norm_placement, rngs=rngs)
        for _ in range(num_layers)])
    has_final = norm_placement in ('pre', 'peri')
    self.norm_final = norms.make_norm(norm, d_model, rngs=rngs) if has_final else None
    self.head = nnx.Linear(d_model, output_dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.token_embed is not None:
      h = self.token_embed(x)
    else:
      h = self.input_proj(x.astype(jnp.float32))
    length = h.shape[-2]
    if self.pos_embed is not None:
      if length > self.max_len:
        raise ConfigError(f'sequence length {length} exceeds model.max_len={self.max_len}')
      h = h + self.pos_embed[:length]
    h = norms.apply_norm(self.norm_embed, h)
    for layer in self.blocks:
      h = layer(h)
    return self.head(norms.apply_norm(self.norm_final, h))

  @property
  def tract_spec(self) -> TractSpec | None:
    if self.input_proj is None:
      return None  # an embedding lookup is not a linear layer of the input
    return TractSpec.dense(('input_proj', 'kernel'), self.in_features)


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=NAME,
      num_layers=2,
      d_model=128,
      num_heads=4,
      mlp_ratio=4.0,
      activation='gelu',
      norm='layernorm',          # layernorm | rmsnorm
      norm_placement='pre',      # pre | post | peri (Peri-LN)
      embed_norm=False,          # Norm after the embedding (+ positions)
      positional='learned',      # learned | none
      max_len=config_dict.placeholder(int),  # learned positions; unset: the data's length
      attention='softmax',       # softmax | linear | delta
      # Passed to the attention class. Set the keys in the config file; their values can then be
      # overridden from the command line (a locked ConfigDict takes no new keys there).
      attention_kwargs=ml_collections.ConfigDict(),
  ))


def from_config(cfg: ml_collections.ConfigDict, *, input_shape: tuple[int, ...], input_dtype,
                vocab_size: int | None, output_dim: int, rngs: nnx.Rngs) -> Transformer:
  input_shape = tuple(input_shape)
  if vocab_size is not None:
    fields.positive_int(NAME, 'vocab_size', vocab_size)
    if len(input_shape) != 1 or not jnp.issubdtype(jnp.dtype(input_dtype), jnp.integer):
      raise ConfigError(f'model {NAME!r} with vocab_size={vocab_size} needs integer tokens of'
                        f' per-example shape (L,); the data gives {input_shape} {input_dtype}')
    in_features = None
  else:
    if len(input_shape) != 2:
      raise ConfigError(f'model {NAME!r} needs per-example inputs (L,) tokens with vocab_size,'
                        f' or (L, d_in) floats; the data gives {input_shape}')
    in_features = input_shape[1]
  for field in ('num_layers', 'd_model', 'num_heads'):
    fields.positive_int(NAME, field, cfg[field])
  if cfg.d_model % cfg.num_heads:
    raise ConfigError(f'model.d_model={cfg.d_model} must be divisible by'
                      f' model.num_heads={cfg.num_heads}')
  fields.positive_number(NAME, 'mlp_ratio', cfg.mlp_ratio)
  fields.choice(NAME, 'activation', cfg.activation, activations.ACTIVATIONS)
  fields.choice(NAME, 'norm', cfg.norm, SEQ_NORMS)
  fields.choice(NAME, 'norm_placement', cfg.norm_placement, block.PLACEMENTS)
  fields.boolean(NAME, 'embed_norm', cfg.embed_norm)
  fields.choice(NAME, 'positional', cfg.positional, POSITIONAL)
  fields.choice(NAME, 'attention', cfg.attention, attention_lib.ATTENTION)
  max_len = cfg.max_len
  if cfg.positional == 'learned':
    if max_len is None:
      max_len = input_shape[0]
    fields.positive_int(NAME, 'max_len', max_len)
    if max_len < input_shape[0]:
      raise ConfigError(f'model.max_len={max_len} is shorter than the data\'s sequence length'
                        f' {input_shape[0]}')
  kwargs = cfg.attention_kwargs
  if isinstance(kwargs, ml_collections.ConfigDict):
    kwargs = kwargs.to_dict()
  kwargs = dict(kwargs or {})
  return Transformer(output_dim, vocab_size=vocab_size, in_features=in_features,
                     num_layers=cfg.num_layers, d_model=cfg.d_model, num_heads=cfg.num_heads,
                     mlp_ratio=cfg.mlp_ratio, activation=cfg.activation, norm=cfg.norm,
                     norm_placement=cfg.norm_placement, embed_norm=cfg.embed_norm,
                     positional=cfg.positional, max_len=max_len, attention=cfg.attention,
                     attention_kwargs=kwargs, rngs=rngs)
