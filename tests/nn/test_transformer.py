"""The causal transformer: causality for every norm placement, positions, max_len."""
import chex
import jax
import jax.numpy as jnp
import pytest

from paperlab.errors import ConfigError


def _assert_causal(apply, params, x, x_changed, t):
  out, out_changed = apply(params, x), apply(params, x_changed)
  chex.assert_trees_all_close(out[:, :t + 1], out_changed[:, :t + 1], atol=1e-6, rtol=1e-6)
  assert jnp.abs(out[:, t + 1:] - out_changed[:, t + 1:]).max() > 1e-4  # the change is seen


@pytest.mark.parametrize('placement', ['pre', 'post', 'peri'])
def test_tokens_after_t_do_not_change_outputs_up_to_t(tiny, placement):
  model = tiny.build('transformer_tokens', norm_placement=placement, embed_norm=True)
  apply, params = tiny.functional(model)
  x = tiny.input('transformer_tokens')
  for t in (0, 3):
    changed = x.at[:, t + 1:].set((x[:, t + 1:] + 1) % 11)
    _assert_causal(apply, params, x, changed, t)


def test_float_inputs_after_t_do_not_change_outputs_up_to_t(tiny):
  model = tiny.build('transformer_floats', norm_placement='peri')
  apply, params = tiny.functional(model)
  x = tiny.input('transformer_floats')
  changed = x.at[:, 3:].add(1.0)
  _assert_causal(apply, params, x, changed, 2)


def test_learned_positions_break_permutation_symmetry(tiny):
  # Same token everywhere: without positions every output row is the same; with them they differ.
  x = jnp.full((1, 6), 3, jnp.int32)
  for positional, differ in (('none', False), ('learned', True)):
    apply, params = tiny.functional(tiny.build('transformer_tokens', positional=positional))
    out = apply(params, x)
    assert bool(jnp.abs(out - out[:, :1]).max() > 1e-4) == differ, positional


def test_max_len_defaults_to_the_data_length_and_bounds_it(tiny):
  model = tiny.build('transformer_tokens')
  assert model.pos_embed.shape == (6, tiny.D)
  longer = tiny.build('transformer_tokens', max_len=9)
  assert longer.pos_embed.shape == (9, tiny.D)
  with pytest.raises(ConfigError, match='max_len=9'):
    longer(jnp.zeros((1, 10), jnp.int32))


def test_attention_slot_builds_the_registered_class_with_its_kwargs(tiny, monkeypatch):
  from flax import nnx
  from paperlab.nn import attention

  class ScaledIdentity(nnx.Module):
    def __init__(self, d_model, num_heads, *, rngs, gain=1.0):
      self.shape = (d_model, num_heads)
      self.gain = gain

    def __call__(self, x):
      return self.gain * x

  monkeypatch.setitem(attention.ATTENTION, 'scaled_identity', lambda: ScaledIdentity)
  model = tiny.build('transformer_floats', attention='scaled_identity',
                     attention_kwargs={'gain': 2.5})
  layer = model.blocks[0].attention
  assert isinstance(layer, ScaledIdentity) and layer.gain == 2.5 and layer.shape == (tiny.D, 2)
  assert jax.eval_shape(model, tiny.input('transformer_floats')).shape == (2, 6, 5)
  with pytest.raises(ConfigError, match=r'attention_kwargs\.window.*valid: gain'):
    tiny.build('transformer_floats', attention='scaled_identity', attention_kwargs={'window': 2})
