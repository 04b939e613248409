"""The transformer residual block with pre-, post- or peri- normalization (Peri-LN).

For each sub-layer F (attention, then the MLP) and residual stream x:

  pre:  y = x + F(Norm(x))                      (GPT-2; the model adds a final Norm)
  post: y = Norm(x + F(x))                      (Vaswani et al. 2017; no final Norm)
  peri: y = x + Norm_out(F(Norm_in(x)))         (Kim et al. 2025, "Peri-LN: Revisiting
                                                 Normalization Layer in the Transformer
                                                 Architecture"; the model adds a final Norm)

Peri-LN's output norms keep their learnable scale (the paper reports that freezing it hurts).
Norm attributes are `norm_<sublayer>_<in|out|post>`: they follow a sub-block or a residual sum,
not a single kernel, so they do not use the `<layer>_norm` NaP naming.
"""
import jax
from flax import nnx

from paperlab.nn import activations, norms

PLACEMENTS = ('pre', 'post', 'peri')


class FeedForward(nnx.Module):
  """fc2(act(fc1(x))), hidden width `hidden`."""

  def __init__(self, d_model: int, hidden: int, *, activation: str, rngs: nnx.Rngs):
    self.fc1 = nnx.Linear(d_model, hidden, rngs=rngs)
    self.fc2 = nnx.Linear(hidden, d_model, rngs=rngs)
    self.activation = activations.get_activation(activation)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(self.activation(self.fc1(x)))


class ResidualBlock(nnx.Module):
  """attention sub-layer then MLP sub-layer, each wrapped per `placement`."""

  def __init__(self, d_model: int, *, attention: nnx.Module, mlp_hidden: int, activation: str,
               norm: str, placement: str, rngs: nnx.Rngs):
    if placement not in PLACEMENTS:
      raise ValueError(f'placement must be one of {PLACEMENTS}, got {placement!r}')
    self.placement = placement
    self.attention = attention
    self.mlp = FeedForward(d_model, mlp_hidden, activation=activation, rngs=rngs)
    make = lambda on: norms.make_norm(norm, d_model, rngs=rngs) if on else None
    self.norm_attn_in = make(placement in ('pre', 'peri'))
    self.norm_attn_out = make(placement == 'peri')
    self.norm_attn_post = make(placement == 'post')
    self.norm_mlp_in = make(placement in ('pre', 'peri'))
    self.norm_mlp_out = make(placement == 'peri')
    self.norm_mlp_post = make(placement == 'post')

  @staticmethod
  def _sublayer(x, f, norm_in, norm_out, norm_post):
    y = x + norms.apply_norm(norm_out, f(norms.apply_norm(norm_in, x)))
    return norms.apply_norm(norm_post, y)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self._sublayer(x, self.attention, self.norm_attn_in, self.norm_attn_out,
                       self.norm_attn_post)
    return self._sublayer(x, self.mlp, self.norm_mlp_in, self.norm_mlp_out, self.norm_mlp_post)
