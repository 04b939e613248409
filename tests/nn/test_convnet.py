"""The ResNet-style convnet against a hand-written lax.conv reference; shapes and strides."""
import chex
import jax
import jax.numpy as jnp
import pytest

import paperlab.nn as pnn

EPS = 1e-6


def _conv(x, p, stride):
  y = jax.lax.conv_general_dilated(x, p['kernel'], (stride, stride), 'SAME',
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return y + p.get('bias', 0.0)


def _norm(z, p, norm):
  assert norm == 'layernorm'
  z = (z - z.mean(-1, keepdims=True)) / jnp.sqrt(z.var(-1, keepdims=True) + EPS)  # layernorm
  return z * p['scale'] + p['bias']


def _reference(params, x, norm):
  """stem -> [block stride 1, block stride 2 with a 1x1 shortcut] -> mean pool -> head."""
  relu = jax.nn.relu
  n = lambda z, p, name: _norm(z, p.get(f'{name}_norm'), norm)
  h = relu(n(_conv(x, params['stem'], 1), params, 'stem'))
  for i, stride in enumerate((1, 2)):
    p = params['blocks'][i]
    y = relu(n(_conv(h, p['conv1'], stride), p, 'conv1'))
    y = n(_conv(y, p['conv2'], 1), p, 'conv2')
    shortcut = n(_conv(h, p['shortcut'], stride), p, 'shortcut') if 'shortcut' in p else h
    h = relu(y + shortcut)
  return h.mean(axis=(1, 2)) @ params['head']['kernel'] + params['head']['bias']


def test_forward_matches_reference(tiny):
  model = tiny.build('cnn', norm='layernorm')
  apply, params = tiny.functional(model)
  assert 'shortcut' in params['blocks'][1]  # the stride-2 block projects its shortcut
  params = tiny.perturbed(params)
  x = tiny.input('cnn')
  expected = jax.jit(_reference, static_argnums=2)(params, x, 'layernorm')
  chex.assert_trees_all_close(apply(params, x), expected, atol=1e-4, rtol=1e-4)


def test_convs_have_a_bias_only_without_a_norm(tiny):
  for norm in ('none', 'groupnorm'):
    block = tiny.build('cnn', norm=norm).blocks[1]
    for conv in (block.conv1, block.conv2, block.shortcut):
      assert (conv.bias is not None) == (norm == 'none')


def test_grayscale_images_without_channel_axis(tiny):
  cfg = tiny.config('cnn', blocks_per_stage=2)
  model = pnn.build(cfg, input_shape=(8, 8), input_dtype=jnp.uint8, vocab_size=None,
                    output_dim=3, rngs=tiny.rngs())
  assert len(model.blocks) == 4 and model.blocks[2].conv1.strides == (2, 2)
  assert model.tract_spec.image_shape == (8, 8, 1)
  out = jax.jit(lambda x: model(x))(jnp.ones((2, 8, 8), jnp.uint8))
  chex.assert_shape(out, (2, 3))
