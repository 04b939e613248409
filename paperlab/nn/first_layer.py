"""`TractSpec`: where a model's first layer is and what it reads, for TrAct.

TrAct (Petersen, Borgelt, Ermon, NeurIPS 2024) replaces the gradient G of the first layer's kernel
by (x^T x / b + lam I)^{-1} G, where x [b, n] holds the layer's input rows: the flattened inputs
of a Dense layer, or every patch the kernel sees for a Conv. A model describes its first layer
with a `TractSpec` (`model.tract_spec`); the trainer builds x from the raw batch with it:

  dense: x = inputs.reshape(-1, in_features)
  conv:  images = inputs.reshape(-1, *image_shape); x = patches of `images` with kernel_size,
         strides and padding, features in Flax kernel order (kh, kw, C), so that a Conv kernel
         [kh, kw, C, O] reshaped to [n, O] multiplies them. (lax.conv_general_dilated_patches
         orders features (C, kh, kw): transpose before use.)

`kernel_path` locates the kernel in `nnx.to_pure_dict(nnx.state(model, nnx.Param))`.

`preact_offset=True` says the model's `__call__` accepts `tract_preact_offset=d`, an array of the
first layer's output rows [b, m] added to its pre-activation z = x W (+ bias). It is zero in the
forward pass; its gradient is dL/dz, which lets TrAct replace the kernel gradient at the cost of
one b x b solve when b < n (optim/tract.py, `tract_output_grads`) instead of two extra matmuls.
"""
import dataclasses
import math
from typing import Hashable

KINDS = ('dense', 'conv')


@dataclasses.dataclass(frozen=True)
class TractSpec:
  """The first layer of a model, as TrAct needs it. Build with `dense(...)` or `conv(...)`."""
  kind: str
  kernel_path: tuple[Hashable, ...]
  in_features: int | None = None              # dense: the layer's input width n
  kernel_size: tuple[int, int] | None = None  # conv: (kh, kw)
  strides: tuple[int, int] | None = None      # conv: (sh, sw)
  padding: str | None = None                  # conv: 'SAME' | 'VALID' (lax semantics)
  image_shape: tuple[int, int, int] | None = None  # conv: per-example (H, W, C) the conv reads
  preact_offset: bool = False                 # __call__ accepts tract_preact_offset (see above)

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f'TractSpec.kind must be one of {KINDS}, got {self.kind!r}')
    if self.kind == 'dense' and self.in_features is None:
      raise ValueError('a dense TractSpec needs in_features')
    if self.kind == 'conv' and None in (self.kernel_size, self.strides, self.padding,
                                        self.image_shape):
      raise ValueError('a conv TractSpec needs kernel_size, strides, padding and image_shape')

  @classmethod
  def dense(cls, kernel_path: tuple[Hashable, ...], in_features: int, *,
            preact_offset: bool = False) -> 'TractSpec':
    return cls('dense', tuple(kernel_path), in_features=int(in_features),
               preact_offset=preact_offset)

  @classmethod
  def conv(cls, kernel_path: tuple[Hashable, ...], *, kernel_size: tuple[int, int],
           strides: tuple[int, int], padding: str,
           image_shape: tuple[int, int, int]) -> 'TractSpec':
    return cls('conv', tuple(kernel_path), kernel_size=tuple(kernel_size),
               strides=tuple(strides), padding=padding, image_shape=tuple(image_shape))

  @property
  def num_inputs(self) -> int:
    """n, the width of one row of x: in_features, or kh * kw * C for a conv."""
    if self.kind == 'dense':
      return self.in_features
    return math.prod(self.kernel_size) * self.image_shape[-1]
