"""The ViT: bidirectional attention (patch permutation symmetry) and the two poolings."""
import chex
import jax
import jax.numpy as jnp


def _swap_patches(x, p=4):
  """Swaps the top-left and bottom-right p x p patches of 8x8 images."""
  a, b = x[:, :p, :p], x[:, p:, p:]
  return x.at[:, :p, :p].set(b).at[:, p:, p:].set(a)


def test_without_positions_mean_pooling_ignores_patch_order(tiny):
  # With positions zeroed, mean pooling and non-causal attention, patches form a set.
  apply, params = tiny.functional(tiny.build('vit', pool='mean'))
  x = tiny.input('vit')
  params = dict(params, pos_embed=jnp.zeros_like(params['pos_embed']))
  chex.assert_trees_all_close(apply(params, _swap_patches(x)), apply(params, x), atol=1e-5,
                              rtol=1e-5)
  # The learned positions make the order matter.
  params['pos_embed'] = tiny.normal(params['pos_embed'].shape)
  assert jnp.abs(apply(params, _swap_patches(x)) - apply(params, x)).max() > 1e-4


def test_cls_pooling_reads_the_cls_token(tiny):
  model = tiny.build('vit', pool='cls')
  assert model.pos_embed.shape == (5, tiny.D)  # 4 patches + cls
  apply, params = tiny.functional(model)
  x = tiny.input('vit')
  out = apply(params, x)
  chex.assert_shape(out, (2, 5))
  # (A constant shift would pass through every LayerNorm unseen: move it randomly.)
  moved = dict(params, cls_token=params['cls_token'] + tiny.normal((1, tiny.D)))
  assert jnp.abs(apply(moved, x) - out).max() > 1e-4
  assert tiny.build('vit', pool='mean').cls_token is None
