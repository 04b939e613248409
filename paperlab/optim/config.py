"""`config.optim`: every field `paperlab.optim.build` reads, with defaults, and its validation.

Fields are flat; a prefix names the part that reads them (grad_noise_*, tract_*, nap_*, muon_*,
lanton_*). Optional fields are placeholders: unset means off (clip_norm, grad_noise_eta, tract_lam)
or "use the default" (decay_steps: the run's total steps; muon_adam_lr: lr).
"""
import ml_collections
from ml_collections import config_dict

from paperlab.errors import ConfigError, unknown_name_error
from paperlab.optim import lanton as lanton_lib
from paperlab.optim import nap as nap_lib
from paperlab.optim.schedules import SCHEDULES

OPTIMIZERS = ('sgd', 'momentum', 'adamw', 'muon', 'lanton')


def default_config() -> ml_collections.ConfigDict:
  """Every field of `config.optim` with its default (see the comments for who reads it)."""
  return ml_collections.ConfigDict(dict(
      name='adamw',               # sgd | momentum | adamw | muon | lanton
      lr=1e-3,                    # peak learning rate
      schedule='constant',        # constant | cosine | warmup_cosine (schedules.py)
      warmup_steps=0,             # linear warmup for constant and warmup_cosine
      decay_steps=config_dict.placeholder(int),  # cosine length incl. warmup; unset: total_steps
      final_lr_scale=0.0,         # cosine end value as a fraction of lr
      weight_decay=0.0,           # sgd/momentum: L2 on the gradient; adamw/muon/lanton: decoupled
      momentum=0.9,               # 'momentum'
      nesterov=False,             # 'momentum'
      b1=0.9,                     # adamw, and muon's Adam part
      b2=0.999,                   # adamw, and muon's Adam part
      eps=1e-8,                   # adamw, muon
      clip_norm=config_dict.placeholder(float),       # clip by global norm; unset: off
      grad_noise_eta=config_dict.placeholder(float),  # gradient noise variance; unset: off
      grad_noise_gamma=0.55,      # gradient noise decay exponent
      tract_lam=config_dict.placeholder(float),       # TrAct lambda; unset: off (paper: 0.1)
      nap=False,                  # NaP projection (needs norm layers in the model)
      nap_norm_params='free',     # free | project_joint | frozen
      nap_bias='joint',           # joint | free
      muon_beta=0.95,             # Muon momentum
      muon_nesterov=True,
      muon_ns_steps=5,
      muon_adam_lr=config_dict.placeholder(float),    # lr of Muon's Adam part; unset: lr
      lanton_noise_adaptive=True,  # False: the plain LMO optimizer (Scion / D-Muon style)
      lanton_estimator='residual',  # residual | two_batch (trainer passes microbatch_grads)
      lanton_beta1=0.95,          # momentum
      lanton_beta2=0.99,          # noise EMA
      lanton_lr_rule='min',       # min | mean
      lanton_sign_lr_scale=0.1,   # embedding/head base rate relative to lr
      lanton_vector_lr_scale=0.1,  # vectors' base rate relative to lr
      lanton_vector_lmo='sign',   # sign | rms
      lanton_nesterov=False,
      lanton_ns_steps=5,
      lanton_noise_every=1,
      lanton_adapt_vectors=False,  # also noise-adapt biases and norm parameters
      lanton_dual_norm_method='lanczos',  # lanczos | newton_schulz | exact (hidden layers' noise)
  ))


def _number(cfg, field: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, optional: bool = False) -> None:
  value = cfg[field]
  if value is None and optional:
    return
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value < high if high_open else value <= high
  if not ok:
    lo = '' if low is None else f"{'>' if low_open else '>='} {low}"
    hi = '' if high is None else f"{'<' if high_open else '<='} {high}"
    need = ' and '.join(s for s in (lo, hi) if s)
    raise ConfigError(f'optim.{field}={value!r} must be a number {need}')


def _int(cfg, field: str, *, low: int, optional: bool = False) -> None:
  value = cfg[field]
  if value is None and optional:
    return
  if not isinstance(value, int) or isinstance(value, bool) or value < low:
    raise ConfigError(f'optim.{field}={value!r} must be an int >= {low}')


def _choice(cfg, field: str, valid) -> None:
  if cfg[field] not in valid:
    raise ConfigError(f'optim.{field}={cfg[field]!r} is not valid; valid: {", ".join(valid)}')


def _bool(cfg, field: str) -> None:
  if not isinstance(cfg[field], bool):
    raise ConfigError(f'optim.{field}={cfg[field]!r} must be True or False')


def resolve(optim_config) -> ml_collections.ConfigDict:
  """`optim_config` completed with the defaults and validated; ConfigError names the bad field."""
  defaults = default_config()
  unknown = sorted(set(optim_config.keys()) - set(defaults.keys()))
  if unknown:
    raise ConfigError(f'unknown field(s) optim.{", optim.".join(unknown)};'
                      f' valid: {", ".join(sorted(defaults.keys()))}')
  cfg = ml_collections.ConfigDict(
      {k: optim_config[k] if k in optim_config else defaults[k] for k in defaults.keys()})
  if cfg.name not in OPTIMIZERS:
    raise unknown_name_error('optimizer', cfg.name, OPTIMIZERS)
  if cfg.schedule not in SCHEDULES:
    raise unknown_name_error('schedule', cfg.schedule, SCHEDULES)
  _number(cfg, 'lr', low=0, low_open=True)
  _int(cfg, 'warmup_steps', low=0)
  _int(cfg, 'decay_steps', low=1, optional=True)
  _number(cfg, 'final_lr_scale', low=0, high=1)
  _number(cfg, 'weight_decay', low=0)
  for field in ('momentum', 'b1', 'b2', 'muon_beta', 'lanton_beta1', 'lanton_beta2'):
    _number(cfg, field, low=0, high=1, high_open=True)
  _number(cfg, 'eps', low=0, low_open=True)
  _number(cfg, 'clip_norm', low=0, low_open=True, optional=True)
  _number(cfg, 'grad_noise_eta', low=0, optional=True)
  _number(cfg, 'grad_noise_gamma', low=0)
  _number(cfg, 'tract_lam', low=0, low_open=True, optional=True)
  _number(cfg, 'muon_adam_lr', low=0, low_open=True, optional=True)
  _number(cfg, 'lanton_sign_lr_scale', low=0)
  _number(cfg, 'lanton_vector_lr_scale', low=0)
  for field in ('nesterov', 'nap', 'muon_nesterov', 'lanton_noise_adaptive', 'lanton_nesterov',
                'lanton_adapt_vectors'):
    _bool(cfg, field)
  _choice(cfg, 'nap_norm_params', nap_lib.NORM_PARAMS)
  _choice(cfg, 'nap_bias', nap_lib.BIAS_MODES)
  _choice(cfg, 'lanton_estimator', lanton_lib.ESTIMATORS)
  _choice(cfg, 'lanton_lr_rule', lanton_lib.LR_RULES)
  _choice(cfg, 'lanton_vector_lmo', lanton_lib.VECTOR_LMOS)
  _choice(cfg, 'lanton_dual_norm_method', lanton_lib.DUAL_NORM_METHODS)
  for field in ('muon_ns_steps', 'lanton_ns_steps', 'lanton_noise_every'):
    _int(cfg, field, low=1)
  if cfg.schedule == 'cosine' and cfg.warmup_steps:
    raise ConfigError(f"optim.warmup_steps={cfg.warmup_steps} does not apply to schedule='cosine';"
                      " use schedule='warmup_cosine'")
  return cfg
