"""Weight initializers by name, including the gradient-noise paper's "Simple Init".

Neelakantan et al. 2015 ("Adding Gradient Noise Improves Learning for Very Deep Networks") train a
20-layer MLP from three starting points: "Simple Init" W ~ N(0, sigma^2) (sigma = 0.1 there), a
"good" init (He et al. 2015) and a "bad" all-zeros init. Kernels:

  lecun   N(0, 1/fan_in), truncated (Flax's default)
  he      N(0, 2/fan_in), truncated (He et al. 2015)
  simple  N(0, init_std^2), not truncated
  zeros   all zeros

Biases: 'zeros', or 'simple' (N(0, init_std^2), same std as the kernels).
"""
import jax
from flax import nnx

from paperlab.errors import unknown_name_error

KERNEL_INITS = ('lecun', 'he', 'simple', 'zeros')
BIAS_INITS = ('zeros', 'simple')


def kernel_init(name: str, init_std: float = 0.1) -> jax.nn.initializers.Initializer:
  """Initializer for Dense and Conv kernels (fan_in counts kh * kw * C for convs)."""
  if name == 'lecun':
    return nnx.initializers.lecun_normal()
  if name == 'he':
    return nnx.initializers.he_normal()
  if name == 'simple':
    return nnx.initializers.normal(stddev=init_std)
  if name == 'zeros':
    return nnx.initializers.zeros_init()
  raise unknown_name_error('init', name, KERNEL_INITS)


def bias_init(name: str, init_std: float = 0.1) -> jax.nn.initializers.Initializer:
  if name == 'zeros':
    return nnx.initializers.zeros_init()
  if name == 'simple':
    return nnx.initializers.normal(stddev=init_std)
  raise unknown_name_error('bias_init', name, BIAS_INITS)
