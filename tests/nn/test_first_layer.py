"""TractSpec: autodiff's first-layer kernel gradient equals x^T dL/dz, x built from the spec.

x is built here independently of the model: flattened inputs for 'dense', and for 'conv' the
patches of lax.conv_general_dilated_patches, whose (C, kh, kw) feature order is transposed to
Flax's (kh, kw, C). dL/dz comes from a probe, put at spec.kernel_path, that adds a zero offset to
the first layer's output: the loss's gradient with respect to the offset is dL/dz.
"""
import math

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from paperlab.nn.first_layer import TractSpec


def layer_inputs(spec: TractSpec, x: jax.Array) -> jax.Array:
  if spec.kind == 'dense':
    return x.reshape(-1, spec.in_features)
  images = x.reshape((-1,) + spec.image_shape)
  c = spec.image_shape[-1]
  kh, kw = spec.kernel_size
  patches = jax.lax.conv_general_dilated_patches(
      images, spec.kernel_size, spec.strides, spec.padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  patches = patches.reshape(-1, c, kh, kw).transpose(0, 2, 3, 1)
  return patches.reshape(-1, kh * kw * c)


def _get(tree, path):
  for key in path:
    tree = tree[key] if isinstance(tree, dict) or isinstance(key, int) else getattr(tree, key)
  return tree


def probe_first_layer(model, spec):
  """Replaces the layer owning spec.kernel_path by one returning layer(x) + box['offset']."""
  box = {}

  class OutputProbe(nnx.Module):
    def __init__(self, layer):
      self.layer = layer

    def __call__(self, x):
      z = self.layer(x)
      box['shape'] = z.shape
      return z + box.get('offset', 0.0)

  *parent_path, name, _ = spec.kernel_path
  parent = _get(model, parent_path)
  if isinstance(name, int):
    parent[name] = OutputProbe(parent[name])
  else:
    setattr(parent, name, OutputProbe(getattr(parent, name)))
  return box


CASES = {
    'mlp': ('mlp', dict(norm='layernorm')),
    'mlp_linear': ('mlp', dict(depth=0)),
    'cnn_strided_5x5_odd_image': ('cnn', dict(stem_kernel_size=5, stem_stride=2, widths=(8,))),
    'vit': ('vit', {}),
    'transformer_floats': ('transformer_floats', {}),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_kernel_gradient_is_patches_transposed_times_output_gradient(tiny, case):
  key, overrides = CASES[case]
  x = tiny.input(key, batch=2)
  if case == 'cnn_strided_5x5_odd_image':  # 9x9 with SAME padding, stride 2: uneven padding
    from paperlab import nn as pnn
    cfg = tiny.config('cnn', **overrides)
    model = pnn.build(cfg, input_shape=(9, 9, 3), input_dtype=jnp.float32, vocab_size=None,
                      output_dim=5, rngs=tiny.rngs())
    x = tiny.normal((2, 9, 9, 3))
  else:
    model = tiny.build(key, **overrides)
  spec = model.tract_spec
  out_shape = jax.eval_shape(model, x).shape
  weights = tiny.normal(out_shape, seed=5)
  loss = lambda out: jnp.sum(out * weights)
  kernel = _get(nnx.to_pure_dict(nnx.state(model, nnx.Param)), spec.kernel_path)

  box = probe_first_layer(model, spec)
  jax.eval_shape(lambda x: model(x), x)  # records the first layer's output shape in the box
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  pure = nnx.to_pure_dict(params)
  probed_path = spec.kernel_path[:-1] + ('layer', 'kernel')
  # kernel_path pointed at the probed layer's kernel (the same values, and nothing else moved).
  assert jnp.array_equal(_get(pure, probed_path), kernel)

  def loss_fn(p, offset):
    box['offset'] = offset
    return loss(nnx.merge(graphdef, p, rest)(x))

  grads, dz = jax.jit(jax.grad(loss_fn, argnums=(0, 1)))(pure, jnp.zeros(box['shape']))
  kernel_grad = _get(grads, probed_path)
  inputs = layer_inputs(spec, x)
  assert inputs.shape[1] == spec.num_inputs
  m = kernel_grad.shape[-1]
  expected = inputs.T @ dz.reshape(-1, m)
  assert jnp.abs(expected).max() > 1e-3  # not a vacuous comparison of zeros
  chex.assert_trees_all_close(kernel_grad.reshape(-1, m), expected, atol=1e-4, rtol=1e-4)


def test_token_transformer_has_no_tract_spec(tiny):
  assert tiny.build('transformer_tokens').tract_spec is None


def test_spec_kinds_and_fields():
  spec = TractSpec.conv(('stem', 'kernel'), kernel_size=(3, 3), strides=(1, 1), padding='SAME',
                        image_shape=(8, 8, 3))
  assert spec.num_inputs == 27
  assert TractSpec.dense(('l', 'kernel'), 64).num_inputs == 64
  with pytest.raises(ValueError):
    TractSpec('depthwise', ('k',))
  with pytest.raises(ValueError):
    TractSpec('conv', ('k',), kernel_size=(3, 3))
  with pytest.raises(dataclasses_frozen_error()):
    spec.padding = 'VALID'
  assert hash(spec) == hash(TractSpec.conv(('stem', 'kernel'), kernel_size=(3, 3),
                                           strides=(1, 1), padding='SAME', image_shape=(8, 8, 3)))
  assert math.prod(spec.kernel_size) * 3 == spec.num_inputs


def dataclasses_frozen_error():
  import dataclasses
  return dataclasses.FrozenInstanceError
