"""Init schemes: zeros gives zeros; simple is N(0, init_std^2), untruncated; he and lecun scale.

These use the default (threefry) PRNG, the one a run uses.
"""
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import paperlab.nn as pnn
from paperlab.nn import inits

FAN_IN = 256


def _mlp(**fields):
  cfg = pnn.default_config('mlp')
  cfg.update(dict(depth=1, width=FAN_IN, **fields))
  return pnn.build(cfg, input_shape=(FAN_IN,), input_dtype=jnp.float32, vocab_size=None,
                   output_dim=4, rngs=nnx.Rngs(0))


def test_zeros_init_gives_zero_params_and_zero_outputs():
  model = _mlp(init='zeros')
  leaves = jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  assert len(leaves) == 4 and not any(jnp.any(leaf) for leaf in leaves)
  assert not jnp.any(model(jnp.ones((3, FAN_IN))))


def test_simple_init_is_untruncated_normal_with_init_std():
  std = 0.05
  model = _mlp(init='simple', init_std=std, bias_init='simple')
  w = model.hidden[0].linear.kernel[...]  # 65536 draws: the std is within ~0.3 %
  assert abs(float(w.std()) - std) < 0.02 * std
  assert abs(float(w.mean())) < 0.02 * std
  # Untruncated: about 4.6 % of N(0, s^2) lies beyond 2 s; a truncated normal has none there.
  assert 0.035 < float(jnp.mean(jnp.abs(w) > 2 * std)) < 0.057
  b = model.hidden[0].linear.bias[...]
  assert jnp.any(b) and abs(float(b.std()) - std) < 0.2 * std


@pytest.mark.parametrize('init,variance', [('he', 2.0 / FAN_IN), ('lecun', 1.0 / FAN_IN)])
def test_fan_in_inits_have_the_right_variance(init, variance):
  w = _mlp(init=init).hidden[0].linear.kernel[...]
  assert abs(float(w.var()) / variance - 1) < 0.04


def test_unknown_init_names():
  with pytest.raises(ValueError, match='unknown init'):
    inits.kernel_init('orthogonal')
  with pytest.raises(ValueError, match='unknown bias_init'):
    inits.bias_init('he')
