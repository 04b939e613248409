"""paperlab.optim: four papers' optimizer ideas as Optax building blocks, and `build(config.optim)`.

Each factory returns an optax GradientTransformation(ExtraArgs) that composes with optax.chain,
works under jit and vmap, and keeps its state as a NamedTuple of arrays (checkpointable):

  add_gradient_noise(eta, gamma=0.55, *, key)       Neelakantan et al. 2015   gradient_noise.py
  tract(lam=0.1, *, mask)                           Petersen et al. 2024      tract.py
  nap_projection(*, mask=None, norm_params='free')  Lyle et al. 2024          nap.py
  lanton(learning_rate, *, noise_adaptive=True)     Hao et al. 2025           lanton.py, lmo.py

Chain order: clip -> add_gradient_noise -> tract -> optimizer -> schedule -> nap_projection.
Depends on jax, optax, chex, numpy and ml_collections only (never on paperlab.nn/train/data).
"""
from paperlab.optim.compose import (build, current_lr, extra_args_needed, get_hyperparams,
                                  injected_fields, learning_rate_fn, set_hyperparams,
                                  tract_sees_raw_gradient)
from paperlab.optim.config import OPTIMIZERS, default_config
from paperlab.optim.gradient_noise import GradientNoiseState, add_gradient_noise, noise_variance
from paperlab.optim.lanton import LantonState, lanton, layer_learning_rates, lmo_groups
from paperlab.optim.lmo import (dual_norm_rms, dual_norm_sign, dual_norm_spectral, lmo_rms,
                                lmo_sign, lmo_spectral, newton_schulz)
from paperlab.optim.nap import NapState, effective_learning_rates, feeds_norm_mask, nap_projection
from paperlab.optim.nuclear_norm import nuclear_norm, nuclear_norm_exact
from paperlab.optim.schedules import SCHEDULES, schedule_shape
from paperlab.optim.tract import (conv_patches, dense_inputs, tract, tract_gradient,
                                  tract_gradient_from_output_grads)

__all__ = [
    'GradientNoiseState', 'LantonState', 'NapState', 'OPTIMIZERS', 'SCHEDULES',
    'add_gradient_noise', 'build', 'conv_patches', 'current_lr', 'default_config', 'dense_inputs',
    'dual_norm_rms', 'dual_norm_sign', 'dual_norm_spectral', 'effective_learning_rates',
    'extra_args_needed', 'feeds_norm_mask', 'get_hyperparams', 'injected_fields', 'lanton',
    'layer_learning_rates', 'learning_rate_fn', 'lmo_groups', 'lmo_rms', 'lmo_sign',
    'lmo_spectral', 'nap_projection', 'newton_schulz', 'noise_variance', 'nuclear_norm',
    'nuclear_norm_exact', 'schedule_shape',
    'set_hyperparams', 'tract', 'tract_gradient', 'tract_gradient_from_output_grads',
    'tract_sees_raw_gradient',
]
