"""paperlab.nn (__init__.py): build, default_config, registry, config errors, shapes, jit + vmap."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import pytest
from flax import nnx

import paperlab.nn as pnn
from paperlab.errors import ConfigError

KEYS = ('mlp', 'cnn', 'vit', 'transformer_tokens', 'transformer_floats')


def test_default_configs_name_every_model_and_use_placeholders():
  assert set(pnn.MODELS) == {'mlp', 'cnn', 'vit', 'transformer'}
  for name in pnn.MODELS:
    cfg = pnn.default_config(name)
    assert isinstance(cfg, ml_collections.ConfigDict)
    assert cfg.name == name
    for key in cfg.keys():
      # A bare None field has no type and cannot be set from the command line.
      field = cfg._fields[key]
      assert cfg[key] is not None or isinstance(field, ml_collections.FieldReference), key
  cfg = pnn.default_config('transformer')
  assert cfg.max_len is None
  cfg.max_len = 64  # the placeholder takes its type
  with pytest.raises(TypeError):
    cfg.max_len = 'long'


@pytest.mark.parametrize('key', KEYS[:4])  # floats: shapes checked in test_block, test_first_layer
def test_output_shape_and_jit_vmap_of_the_merged_call(tiny, key):
  model = tiny.build(key)
  x = tiny.input(key, batch=3)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  pure = nnx.to_pure_dict(params)

  @jax.jit
  def batched_and_per_example(p, x):
    batched = nnx.merge(graphdef, p, rest)(x)
    per_example = jax.vmap(lambda xi: nnx.merge(graphdef, p, rest)(xi[None])[0])(x)
    return batched, per_example

  batched, per_example = batched_and_per_example(pure, x)
  chex.assert_shape(batched, tiny.output_shape(key, batch=3))
  chex.assert_trees_all_close(per_example, batched, atol=1e-5, rtol=1e-5)


def test_unknown_model_name():
  with pytest.raises(ConfigError, match=r"unknown model 'resnet9000'.*cnn, mlp, transformer, vit"):
    pnn.build(ml_collections.ConfigDict({'name': 'resnet9000'}), input_shape=(4,),
              input_dtype=jnp.float32, vocab_size=None, output_dim=2, rngs=nnx.Rngs(0))
  with pytest.raises(ConfigError, match='unknown model'):
    pnn.default_config('resnet9000')


def test_unknown_field_names_it_and_lists_valid_ones(tiny):
  cfg = tiny.config('mlp')
  cfg.unlock()
  cfg.widht = 3
  with pytest.raises(ConfigError, match=r'unknown field model\.widht .*valid: .*width'):
    pnn.build(cfg, input_shape=(8,), input_dtype=jnp.float32, vocab_size=None, output_dim=5,
              rngs=nnx.Rngs(0))


def test_missing_fields_take_defaults(tiny):
  model = pnn.build({'name': 'mlp', 'depth': 1, 'width': 8}, input_shape=(8,),
                    input_dtype=jnp.float32, vocab_size=None, output_dim=5, rngs=tiny.rngs())
  assert len(model.hidden) == 1
  assert model.hidden[0].activation is jax.nn.relu  # the default activation
  assert model.hidden[0].linear_norm is None        # the default norm


@pytest.mark.parametrize('key,overrides,match', [
    ('transformer_tokens', dict(norm_placement='middle'),
     r'norm_placement=.middle.*pre, post, peri'),
    ('transformer_tokens', dict(attention='flash'), r'attention=.flash.*softmax'),
    ('transformer_tokens', dict(norm='batchnorm'), r'model\.norm=.batchnorm'),
    ('transformer_tokens', dict(d_model=7), 'divisible'),
    ('transformer_tokens', dict(max_len=4), 'max_len'),
    ('transformer_tokens', dict(positional='rope'), 'positional'),
    ('transformer_tokens', dict(attention_kwargs={'bogus': 1}),
     r'attention_kwargs\.bogus.*causal'),
    ('vit', dict(patch_size=3), 'not divisible by model.patch_size=3'),
    ('vit', dict(pool='max'), 'pool'),
    ('mlp', dict(init='orthogonal'), r'init=.orthogonal.*lecun, he, simple, zeros'),
    ('mlp', dict(activation='swish2'), 'activation'),
    ('mlp', dict(norm='groupnorm'), r'model\.norm'),
    ('mlp', dict(depth=-1), 'depth'),
    ('cnn', dict(num_groups=3), 'num_groups=3 must divide'),
    ('cnn', dict(widths=()), 'widths'),
])
def test_bad_values_raise_config_error(tiny, key, overrides, match):
  with pytest.raises(ConfigError, match=match):
    tiny.build(key, **overrides)


def test_input_kind_mismatches_raise_config_error():
  cfg = pnn.default_config('transformer')
  kwargs = dict(output_dim=2, rngs=nnx.Rngs(0))
  with pytest.raises(ConfigError, match='integer tokens'):
    pnn.build(cfg, input_shape=(6,), input_dtype=jnp.float32, vocab_size=10, **kwargs)
  with pytest.raises(ConfigError, match=r'\(L, d_in\)'):
    pnn.build(cfg, input_shape=(6,), input_dtype=jnp.float32, vocab_size=None, **kwargs)
  with pytest.raises(ConfigError, match='tokens'):
    pnn.build(pnn.default_config('mlp'), input_shape=(6,), input_dtype=jnp.int32, vocab_size=10,
              **kwargs)
  with pytest.raises(ConfigError, match=r'\(H, W, C\)'):
    pnn.build(pnn.default_config('cnn'), input_shape=(64,), input_dtype=jnp.float32,
              vocab_size=None, **kwargs)


def test_models_hold_no_rng_state_or_batch_stats(tiny):
  for key in KEYS:
    _, _, rest = nnx.split(tiny.build(key), nnx.Param, ...)
    assert not jax.tree.leaves(rest), key
