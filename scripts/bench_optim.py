"""Overhead of each paperlab.optim transform over its base optimizer, on the same model and batch.

Times the full jitted train step (forward, backward, optimizer update, apply) of an MLP and a small
ViT from paperlab.nn; every (base, variant) pair runs side by side in one process, interleaved
round by round so that both see the same machine load. Reports the median step time after warm-up
and the ratio variant / base, against the goals of issue 3 (and the ratio of the fastest rounds,
a steadier figure on a shared machine):

  gradient noise (on sgd)   <= 1.05x      TrAct (on adamw)   <= 1.10x
  NaP (on adamw)            <= 1.05x      LANTON vs Muon     <= 1.10x

Measured (2-core AMD EPYC CPU, 24 GiB, no GPU, jax 0.10.2, load average ~2; batch 128; MLP 784-512x3
with LayerNorm, ViT 32x32x3 patch 4 d128 x4; ratio of medians / ratio of fastest rounds; OpenBLAS
at one thread, as paperlab/cpu.py sets it for training; MLP rows from one run, ViT rows from two):

  mlp  sgd + grad noise         1.97 / 1.94   not met: sampling 0.93M normals ~ one fwd+bwd (below)
  mlp  adamw + TrAct            1.07 / 1.07   b = 128 < n = 784: push-through form from dL/dz
  mlp  adamw + NaP              1.00 / 1.01
  mlp  LANTON vs Muon           1.00 / 1.02   Lanczos dual norm (nuclear_norm.py); 1.07 / 1.03 in
                                              a second run
  mlp  LANTON (NS dual norm)    1.56 / 1.59   the old <R, NS(R)>: one more Newton-Schulz per matrix
  mlp  LANTON every 10 vs Muon  0.80 / 0.81
  mlp  LMO (no noise) vs Muon   0.78 / 0.78   (our LMO step is cheaper than optax.contrib.muon)
  vit  sgd + grad noise         1.01 / 1.01
  vit  adamw + TrAct            1.00 / 0.99
  vit  adamw + NaP (hidden)     0.99 / 1.00
  vit  LANTON vs Muon           0.99 / 1.01   (0.99 / 1.02 in the second run)
  vit  LANTON every 10 vs Muon  0.99 / 1.00

Gradient noise on the MLP: the cost is drawing one N(0, 1) sample per parameter per step (threefry
bits plus the inverse-erf transform, ~4 ms for 0.93M samples here), against a fwd+bwd of
~6 b FLOPs per parameter, so the ratio falls only with the batch: 1.49 / 1.49 at b = 1024 and
1.03 / 1.01 at b = 4096 (--batch_size; measured), and on the ViT, whose parameters see 64 tokens
per image, it is already 1.01. A cheaper sampler would change the noise (fewer random bits or an
approximate normal), which we chose not to do; jax's classic threefry layout was faster for one flat
array but 2.5x slower per leaf of a parameter tree (measured), so the default layout stays.

Before paperlab/cpu.py, OpenBLAS's threads (woken by TrAct's and LANTON's LAPACK calls) slowed
every step of the process: the MLP AdamW step took 8.5-9.0 ms instead of 4.8-5.0 ms.

Usage:
  python scripts/bench_optim.py                       # both models, default sizes
  python scripts/bench_optim.py --models=mlp --rounds=30 --steps_per_round=5
"""
import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from paperlab import cpu, nn, optim
from paperlab.optim import paths
from paperlab.errors import ConfigError

GOALS = {'grad_noise': 1.05, 'tract': 1.10, 'nap': 1.05, 'lanton': 1.10}


def model_config(name: str) -> tuple[ml_collections.ConfigDict, tuple[int, ...]]:
  if name == 'mlp':
    cfg = nn.default_config('mlp')
    cfg.depth, cfg.width, cfg.norm = 3, 512, 'layernorm'  # norms so that NaP applies
    return cfg, (28, 28)
  cfg = nn.default_config('vit')
  cfg.patch_size, cfg.d_model, cfg.num_layers, cfg.num_heads = 4, 128, 4, 4
  return cfg, (32, 32, 3)


def _hidden_kernels(params):
  """NaP mask for a model where no kernel feeds a `<name>_norm` (the pre-LN ViT): every hidden
  kernel, as a stand-in of the same cost (the projection's cost does not depend on the pairing)."""
  return jax.tree.map(lambda g: g == 'spectral', optim.lmo_groups(params))


def variants(args, params) -> list[tuple[str, str, dict, dict]]:
  """(goal key, label, base optim overrides, variant optim overrides)."""
  nap = ('nap', 'adamw + NaP', dict(name='adamw'), dict(name='adamw', nap=True))
  if not any(jax.tree.leaves(optim.feeds_norm_mask(params))):
    nap = ('nap', 'adamw + NaP (mask: all hidden kernels)', dict(name='adamw'),
           dict(name='adamw', _nap_mask=_hidden_kernels))
  return [
      ('grad_noise', 'sgd + grad noise', dict(name='sgd'), dict(name='sgd', grad_noise_eta=0.01)),
      ('tract', 'adamw + TrAct', dict(name='adamw'), dict(name='adamw', tract_lam=0.1)),
      nap,
      ('lanton', 'LANTON vs Muon', dict(name='muon', lr=0.02), dict(name='lanton', lr=0.02)),
      (None, 'LANTON dual norm by NS vs Muon', dict(name='muon', lr=0.02),
       dict(name='lanton', lr=0.02, lanton_dual_norm_method='newton_schulz')),
      ('lanton', f'LANTON noise_every={args.noise_every} vs Muon', dict(name='muon', lr=0.02),
       dict(name='lanton', lr=0.02, lanton_noise_every=args.noise_every)),
      (None, 'LMO (noise_adaptive=False) vs Muon', dict(name='muon', lr=0.02),
       dict(name='lanton', lr=0.02, lanton_noise_adaptive=False)),
  ]


def make_step(model, params, optim_overrides: dict, input_shape):
  """A jitted step(params, opt_state, x, y) -> (params, opt_state, loss), or None if n/a."""
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)
  optim_overrides = dict(optim_overrides)
  nap_mask = optim_overrides.pop('_nap_mask', None)
  cfg = optim.default_config()
  cfg.update(optim_overrides)
  spec = model.tract_spec
  try:
    tx = optim.build(cfg, params, total_steps=1000, rng=jax.random.key(1),
                     tract_path=spec.kernel_path)
  except ConfigError as error:  # e.g. NaP on a model without norms
    return None, str(error)
  if nap_mask is not None:
    tx = optax.chain(tx, optim.nap_projection(mask=nap_mask))
  tract_on = 'tract_inputs' in optim.extra_args_needed(cfg)
  # As the trainer does: TrAct from the first layer's dL/dz when the model exposes it.
  tract_from_output_grads = tract_on and spec.preact_offset and optim.tract_sees_raw_gradient(cfg)

  def loss_fn(p, x, y, offset=None):
    kwargs = {} if offset is None else {'tract_preact_offset': offset}
    logits = nnx.merge(graphdef, p, rest)(x, **kwargs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(p, opt_state, x, y):
    extra = {}
    if tract_on:
      if spec.kind == 'dense':
        extra['tract_inputs'] = optim.dense_inputs(x.reshape(-1, spec.in_features))
      else:
        extra['tract_inputs'] = optim.conv_patches(x.reshape((-1,) + spec.image_shape),
                                                   spec.kernel_size, spec.strides, spec.padding)
    if tract_from_output_grads:
      width = paths.leaf_at(p, spec.kernel_path).shape[-1]  # m, the first layer's outputs
      offset = jnp.zeros((extra['tract_inputs'].shape[0], width), jnp.float32)
      loss, (grads, extra['tract_output_grads']) = jax.value_and_grad(loss_fn, argnums=(0, 3))(
          p, x, y, offset)
    else:
      loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
    updates, opt_state = tx.update(grads, opt_state, p, **extra)
    return optax.apply_updates(p, updates), opt_state, loss

  return (jax.jit(step, donate_argnums=(0, 1)), tx.init(params)), None


def time_pair(runs, x, y, args) -> tuple[list[float], list[float]]:
  """(median, min) seconds per step of each run, interleaved round by round."""
  states = []
  for step, opt_state, params in runs:
    for _ in range(args.warmup):
      params, opt_state, loss = step(params, opt_state, x, y)
    jax.block_until_ready(loss)
    states.append([params, opt_state])
  samples = [[] for _ in runs]
  for _ in range(args.rounds):
    for i, (step, _, _) in enumerate(runs):
      params, opt_state = states[i]
      start = time.perf_counter()
      for _ in range(args.steps_per_round):
        params, opt_state, loss = step(params, opt_state, x, y)
      jax.block_until_ready((params, loss))
      samples[i].append((time.perf_counter() - start) / args.steps_per_round)
      states[i] = [params, opt_state]
  return [statistics.median(s) for s in samples], [min(s) for s in samples]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--models', default='mlp,vit')
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--rounds', type=int, default=15)
  parser.add_argument('--steps_per_round', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--noise_every', type=int, default=10)
  parser.add_argument('--only', default='', help='comma-separated goal keys to run (default all)')
  args = parser.parse_args()
  cpu.limit_blas_threads()  # as the trainer does: OpenBLAS threads would slow every step (cpu.py)

  device = jax.devices()[0]
  print(f'jax {jax.__version__} on {device.platform} ({device.device_kind}), '
        f'{platform.processor() or platform.machine()}; batch {args.batch_size}, median of '
        f'{args.rounds} rounds x {args.steps_per_round} steps after {args.warmup} warm-up steps')
  header = (f"{'model':6} {'pair':40} {'base ms':>9} {'variant ms':>11} {'ratio':>7} {'goal':>6}"
            f" {'min ratio':>10}")
  print(header)
  print('-' * len(header))
  for name in args.models.split(','):
    cfg, input_shape = model_config(name)
    model = nn.build(cfg, input_shape=input_shape, input_dtype=jnp.float32, vocab_size=None,
                     output_dim=10, rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.split(model, nnx.Param, ...)[1])
    key_x, key_y = jax.random.split(jax.random.key(0))
    x = jax.random.normal(key_x, (args.batch_size,) + input_shape)
    y = jax.random.randint(key_y, (args.batch_size,), 0, 10)
    for goal_key, label, base, variant in variants(args, params):
      if args.only and (goal_key or 'lanton') not in args.only.split(','):
        continue
      (base_run, _), (variant_run, why) = (make_step(model, params, base, input_shape),
                                           make_step(model, params, variant, input_shape))
      if variant_run is None:
        print(f'{name:6} {label:40} {"n/a":>9} {"n/a":>11} {"":>7} {"":>6}  ({why[:60]}...)')
        continue
      runs = [(run[0], run[1], jax.tree.map(jnp.copy, params))
              for run in (base_run, variant_run)]
      (base_s, variant_s), (base_min, variant_min) = time_pair(runs, x, y, args)
      goal = f'{GOALS[goal_key]:.2f}' if goal_key else ''
      print(f'{name:6} {label:40} {base_s * 1e3:9.2f} {variant_s * 1e3:11.2f} '
            f'{variant_s / base_s:7.3f} {goal:>6} {variant_min / base_min:10.3f}', flush=True)


if __name__ == '__main__':
  main()
