"""`build(config.optim, params)`: the optimizer of a run, assembled from config in a fixed order.

    clip_by_global_norm   (clip_norm set)
    add_gradient_noise    (grad_noise_eta set)        Neelakantan et al. 2015
    tract                 (tract_lam set)             Petersen et al. 2024
    base optimizer        sgd | momentum | adamw | muon | lanton (Hao et al. 2025), at the peak lr
    scale_by_schedule     the lr schedule's shape (peak 1), schedules.py
    nap_projection        (nap)                       Lyle et al. 2024

Extra update arguments (`extra_args_needed`): 'tract_inputs' (the first layer's input rows [b, n],
see tract.py) when TrAct is on; 'microbatch_grads' (a tuple of two gradient pytrees, each from one
half of the batch; `updates` is their mean) for LANTON's 'two_batch' noise estimator.

Vectorized sweeps: with inject_hyperparams=True every numeric hyperparameter of the chosen parts
lives in the optimizer state as a float32 array (`optax.inject_hyperparams` around the whole chain),
keyed by its config field name: `injected_fields(cfg)` lists them, `get_hyperparams(opt_state)`
reads them and `set_hyperparams(opt_state, lr=..., ...)` writes them, also on a stack of states
(vmap over trials). The schedule multiplies the injected peak `lr`, so a sweep over lr keeps one
schedule shape. inject_hyperparams forwards extra update arguments to the chain.

Logging the learning rate: `learning_rate_fn(cfg, total_steps)(step)` is the configured rate at a
step; `current_lr(cfg, opt_state, step, total_steps)` reads the injected peak when there is one (use
it inside a vmapped sweep step, where trials have different rates).

Choices: sgd and momentum add weight_decay * params to the gradient (coupled L2, PyTorch SGD);
adamw, muon and lanton decay decoupled, multiplied by the rate (optax convention). muon is
optax.contrib.muon with Newton-Schulz on the 'spectral' leaves of `lanton.lmo_groups` (hidden
Dense and Conv kernels) and Adam on the rest (embeddings, head, vectors), as in Keller Jordan's
recipe, so it is the baseline LANTON is compared with.
"""
import inspect
from typing import Any, Hashable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from paperlab.errors import ConfigError
from paperlab.optim import config as config_lib
from paperlab.optim import paths
from paperlab.optim.gradient_noise import add_gradient_noise
from paperlab.optim.lanton import lanton, lmo_groups
from paperlab.optim.nap import feeds_norm_mask, nap_projection
from paperlab.optim.schedules import schedule_shape
from paperlab.optim.tract import tract

_BASE_FIELDS = {
    'sgd': ('weight_decay',),
    'momentum': ('weight_decay', 'momentum'),
    'adamw': ('weight_decay', 'b1', 'b2', 'eps'),
    'muon': ('weight_decay', 'muon_beta', 'b1', 'b2', 'eps'),
    'lanton': ('weight_decay', 'lanton_beta1', 'lanton_beta2', 'lanton_sign_lr_scale',
               'lanton_vector_lr_scale'),
}


def injected_fields(optim_config) -> tuple[str, ...]:
  """Config fields that inject_hyperparams=True puts in the optimizer state."""
  cfg = config_lib.resolve(optim_config)
  fields = ['lr']
  if cfg.schedule != 'constant':
    fields.append('final_lr_scale')
  if cfg.clip_norm is not None:
    fields.append('clip_norm')
  if cfg.grad_noise_eta is not None:
    fields += ['grad_noise_eta', 'grad_noise_gamma']
  if cfg.tract_lam is not None:
    fields.append('tract_lam')
  fields += _BASE_FIELDS[cfg.name]
  if cfg.name == 'muon' and cfg.muon_adam_lr is not None:
    fields.append('muon_adam_lr')
  return tuple(fields)


def extra_args_needed(optim_config) -> set[str]:
  """Keyword arguments the trainer must pass to tx.update (see the module docstring)."""
  cfg = config_lib.resolve(optim_config)
  needed = set()
  if cfg.tract_lam is not None:
    needed.add('tract_inputs')
  if cfg.name == 'lanton' and cfg.lanton_noise_adaptive and cfg.lanton_estimator == 'two_batch':
    needed.add('microbatch_grads')
  return needed


def tract_sees_raw_gradient(optim_config) -> bool:
  """True when TrAct is on and nothing before it in the chain (clipping, gradient noise) changes
  the gradient: then the trainer may pass `tract_output_grads` and skip the kernel gradient."""
  cfg = config_lib.resolve(optim_config)
  return cfg.tract_lam is not None and cfg.clip_norm is None and cfg.grad_noise_eta is None


def _decay_steps(cfg, total_steps: int | None) -> int | None:
  if cfg.schedule == 'constant':
    return None
  steps = cfg.decay_steps if cfg.decay_steps is not None else total_steps
  if steps is None:
    raise ConfigError(f"optim.schedule={cfg.schedule!r} needs optim.decay_steps or the run's"
                      ' total_steps')
  if cfg.schedule == 'warmup_cosine' and steps <= cfg.warmup_steps:
    raise ConfigError(f'optim.decay_steps={steps} must exceed optim.warmup_steps='
                      f'{cfg.warmup_steps} (decay_steps counts the warmup)')
  return steps


def learning_rate_fn(optim_config, total_steps: int | None = None):
  """step -> the configured learning rate lr * shape(step) (float32; jit-friendly)."""
  cfg = config_lib.resolve(optim_config)
  shape = schedule_shape(cfg.schedule, warmup_steps=cfg.warmup_steps,
                         decay_steps=_decay_steps(cfg, total_steps),
                         final_lr_scale=cfg.final_lr_scale)
  return lambda step: cfg.lr * shape(step)


def _muon_dimension_numbers(params):
  labels = jax.tree.leaves(lmo_groups(params))
  dims = [optax.contrib.MuonDimensionNumbers(tuple(range(x.ndim - 1)), x.ndim - 1)
          if label == 'spectral' else None
          for label, x in zip(labels, jax.tree.leaves(params))]
  return jax.tree.unflatten(jax.tree.structure(params), dims)


# Optimizers whose learning rate takes the whole schedule (peak lr times its shape) in one scaling
# pass, as optax's own aliases do; the others get the shape as a separate `scale_by_schedule` (muon's
# Adam branch and LANTON's groups need it too). One pass less is ~10% of a small model's CPU step.
SCHEDULE_IN_LR = ('sgd', 'momentum', 'adamw')


def _base_optimizer(cfg, hp: dict[str, Any], lr) -> optax.GradientTransformation:
  if cfg.name in ('sgd', 'momentum'):
    parts = [optax.add_decayed_weights(hp['weight_decay'])]
    if cfg.name == 'momentum':
      parts.append(optax.trace(decay=hp['momentum'], nesterov=cfg.nesterov))
    return optax.chain(*parts, optax.scale_by_learning_rate(lr))
  if cfg.name == 'adamw':
    return optax.adamw(lr, b1=hp['b1'], b2=hp['b2'], eps=hp['eps'],
                       weight_decay=hp['weight_decay'])
  if cfg.name == 'muon':
    return optax.contrib.muon(
        lr, ns_steps=cfg.muon_ns_steps, beta=hp['muon_beta'], eps=hp['eps'],
        weight_decay=hp['weight_decay'], nesterov=cfg.muon_nesterov, adam_b1=hp['b1'],
        adam_b2=hp['b2'], adam_weight_decay=hp['weight_decay'],
        adam_learning_rate=hp.get('muon_adam_lr'),
        muon_weight_dimension_numbers=_muon_dimension_numbers)
  return lanton(
      lr, noise_adaptive=cfg.lanton_noise_adaptive, estimator=cfg.lanton_estimator,
      beta1=hp['lanton_beta1'], beta2=hp['lanton_beta2'], lr_rule=cfg.lanton_lr_rule,
      sign_lr_scale=hp['lanton_sign_lr_scale'], vector_lr_scale=hp['lanton_vector_lr_scale'],
      vector_lmo=cfg.lanton_vector_lmo, weight_decay=hp['weight_decay'],
      nesterov=cfg.lanton_nesterov, ns_steps=cfg.lanton_ns_steps,
      noise_every=cfg.lanton_noise_every, adapt_vectors=cfg.lanton_adapt_vectors,
      dual_norm_method=cfg.lanton_dual_norm_method)


def _tract_mask(params, tract_path: Sequence[Hashable] | None):
  if tract_path is None:
    raise ConfigError('optim.tract_lam is set but no first-layer kernel path was given'
                      ' (build(..., tract_path=model.tract_spec.kernel_path))')
  try:
    return paths.mask_at(params, tuple(tract_path))
  except KeyError:
    kernels = [paths.path_str(p) for p in paths.leaf_paths(params) if p[-1] == 'kernel']
    raise ConfigError(f'TrAct kernel path {paths.path_str(tuple(tract_path))!r} is not in the'
                      f' params; kernels: {", ".join(kernels)}') from None


def build(optim_config, params, *, total_steps: int | None = None, rng: jax.Array | None = None,
          tract_path: Sequence[Hashable] | None = None,
          inject_hyperparams: bool = False) -> optax.GradientTransformationExtraArgs:
  """The optimizer described by `optim_config` for `params`; see the module docstring.

  Args:
    optim_config: `config.optim` (fields of `default_config()`; missing ones take the default).
    params: the model parameters (shapes and paths are read; values only by NaP's init).
    total_steps: the run length, the default cosine length.
    rng: key for the gradient noise (default jax.random.key(0)).
    tract_path: path of the first-layer kernel in params, needed when TrAct is on.
    inject_hyperparams: keep numeric hyperparameters in the state (vectorized sweeps).
  Raises:
    ConfigError for an unknown optimizer, schedule or field, or a bad value.
  """
  cfg = config_lib.resolve(optim_config)
  decay_steps = _decay_steps(cfg, total_steps)
  tract_mask = _tract_mask(params, tract_path) if cfg.tract_lam is not None else None
  if cfg.nap and not any(paths.resolve_mask(feeds_norm_mask, params)):
    raise ConfigError('optim.nap=True needs a model whose kernels feed normalization layers'
                      ' (a module <name> with a sibling <name>_norm, e.g. model.norm=layernorm)')
  key = rng if rng is not None else jax.random.key(0)
  fields = injected_fields(cfg)

  def make_chain(**hp):
    parts = []
    if cfg.clip_norm is not None:
      parts.append(optax.clip_by_global_norm(hp['clip_norm']))
    if cfg.grad_noise_eta is not None:
      parts.append(add_gradient_noise(hp['grad_noise_eta'], hp['grad_noise_gamma'], key=key))
    if cfg.tract_lam is not None:
      parts.append(tract(hp['tract_lam'], mask=tract_mask))
    shape = None
    if cfg.schedule != 'constant' or cfg.warmup_steps:
      shape = schedule_shape(cfg.schedule, warmup_steps=cfg.warmup_steps, decay_steps=decay_steps,
                             final_lr_scale=hp.get('final_lr_scale', cfg.final_lr_scale))
    if shape is not None and cfg.name in SCHEDULE_IN_LR:
      parts.append(_base_optimizer(cfg, hp, lambda count: hp['lr'] * shape(count)))
    else:
      parts.append(_base_optimizer(cfg, hp, hp['lr']))
      if shape is not None:
        parts.append(optax.scale_by_schedule(shape))
    if cfg.nap:
      parts.append(nap_projection(norm_params=cfg.nap_norm_params, bias=cfg.nap_bias))
    return optax.chain(*parts)

  if not inject_hyperparams:
    return make_chain(**{f: cfg[f] for f in fields})
  make_chain.__signature__ = inspect.Signature(
      [inspect.Parameter(f, inspect.Parameter.KEYWORD_ONLY) for f in fields])
  return optax.inject_hyperparams(make_chain, hyperparam_dtype=jnp.float32)(
      **{f: float(cfg[f]) for f in fields})


def _injected_state(opt_state) -> optax.InjectStatefulHyperparamsState:
  if not isinstance(opt_state, optax.InjectStatefulHyperparamsState):
    raise ConfigError('the optimizer was built without inject_hyperparams=True; its'
                      ' hyperparameters are constants')
  return opt_state


def get_hyperparams(opt_state) -> dict[str, jax.Array]:
  """The injected hyperparameters, keyed by config field name (stacked under a vmapped sweep)."""
  return dict(_injected_state(opt_state).hyperparams)


def set_hyperparams(opt_state, **values) -> Any:
  """opt_state with injected hyperparameters replaced, e.g. set_hyperparams(s, lr=3e-4).

  A scalar is broadcast over a stack of trial states; an array must match the stack's shape.
  """
  state = _injected_state(opt_state)
  hyperparams = dict(state.hyperparams)
  for name, value in values.items():
    if name not in hyperparams:
      raise ConfigError(f'{name!r} is not an injected hyperparameter of this optimizer;'
                        f' injected: {", ".join(sorted(hyperparams))}')
    old = hyperparams[name]
    hyperparams[name] = jnp.broadcast_to(jnp.asarray(value, jnp.float32), jnp.shape(old))
  return state._replace(hyperparams=hyperparams)


def current_lr(optim_config, opt_state, step, total_steps: int | None = None) -> jax.Array:
  """The learning rate used for the update at `step`: the injected peak lr (and final_lr_scale)
  when the state has them, else the configured ones, times the schedule's shape."""
  cfg = config_lib.resolve(optim_config)
  injected = (opt_state.hyperparams
              if isinstance(opt_state, optax.InjectStatefulHyperparamsState) else {})
  shape = schedule_shape(cfg.schedule, warmup_steps=cfg.warmup_steps,
                         decay_steps=_decay_steps(cfg, total_steps),
                         final_lr_scale=injected.get('final_lr_scale', cfg.final_lr_scale))
  return injected.get('lr', cfg.lr) * shape(step)


def default_config() -> ml_collections.ConfigDict:
  """Every field of `config.optim`; see paperlab/optim/config.py."""
  return config_lib.default_config()
