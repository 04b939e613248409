"""LANTON: Hao, Gong, Xu, Wang, Liu, "Noise-Adaptive Layerwise Learning Rates" (arXiv 2510.14009,
"LAyer-wise Noise-adaptive learning raTe scaling with Operator Norms").

No public code exists; this may be the first implementation. Verified from the paper's abstract and
reviews: an LMO (geometry-aware) optimizer with per-layer momentum and per-layer update
X <- X + eta_l LMO_l(B_l) (Scion / D-Muon style); hidden matrices use the RMS->RMS operator norm
(Newton-Schulz LMO), the embedding and output head use l1->linf (sign LMO, i.e. Signum); each step
estimates every layer's gradient noise in the dual norm of its LMO, and layers within a group that
shares a norm get learning rates that shrink as their noise grows; Algorithm 1 offers two noise
estimators. Every detail below marked [R] is our reconstruction, not read from the paper.

Per layer l (one parameter leaf) at step t = 1, 2, ...:

    B_l   = beta1 B_l + (1 - beta1) G_l                                  momentum
    v_l   = ||R_l||_{l,*}^2                                              noise sample [R]
            'residual':  R_l = G_l - B_l^{prev} / (1 - beta1^(t-1))     (t >= 2; no sample at t = 1)
            'two_batch': R_l = (G_l^(1) - G_l^(2)) / 2                  (two half-batch gradients)
    H_l   = beta2 H_l + (1 - beta2) v_l                                  noise EMA [R]
    r_l   = sqrt(min_{j in group(l)} H_j / H_l)     lr_rule='min' [R]: the least noisy layer of a
            group takes the group's base rate, a layer with k times its noise std takes 1/k of it
            (the paper's principle: eta_l proportional to 1 / sigma_l within a group);
            lr_rule='mean': r_l proportional to 1 / sqrt(H_l), normalized to mean 1 in the group
    X_l  <- X_l + eta_g(t) r_l (LMO_l(B_l) - weight_decay X_l)

With noise_adaptive=False, r_l = 1: the plain LMO optimizer (Scion / D-Muon style), the baseline the
paper compares against. With equal noise in every layer of a group, r_l = 1 as well.

Groups and LMOs (`lmo_groups`, overridable with `groups`) [R where marked]:
- 'spectral': kernels with >= 2 axes (Dense [d_in, d_out], Conv [kh, kw, C, O] as [kh*kw*C, O]):
  LMO -sqrt(d_out/d_in) NS(B), dual norm sqrt(d_out/d_in) ||R||_nuclear, rate eta(t).
- 'sign': the embedding tables and the output head kernel (paths containing 'head', 'lm_head',
  'unembed', 'embedding', 'token_embed', 'pos_embed', 'cls_token'): LMO -sign(B), dual norm
  ||R||_1, rate sign_lr_scale * eta(t) [R: the ratio of base rates between groups is ours].
- 'vector': every leaf with < 2 axes (biases, norm scales and offsets) [R, the paper's choice is
  unknown]: vector_lmo='sign' (l-inf geometry as for the head, Scion-style; default) or 'rms'
  (LMO -B/||B||_RMS, dual norm sqrt(d) ||R||_2); rate vector_lr_scale * eta(t). Not noise-adapted
  by default (adapt_vectors=False, r_l = 1) [R]: the paper adapts its two matrix groups, and a
  bias that sums its gradient over every token would otherwise be throttled against a LayerNorm
  scale by the size of its gradient rather than its noise. Its noise EMA is still tracked.
Noise ratios are normalized within each group only.

Other choices [R]: the hidden-layer nuclear norm of R (dual_norm_method) is by default
'lanczos', the deflated block Lanczos estimate of nuclear_norm.py (16 Rademacher probes, 10 block
products with the Gram; a few % above the SVD value; on a CPU a third of the cost of one more
Newton-Schulz at 784x512, twice it at 128x128: measured table there), its probes drawn
from fold_in(fold_in(key(0), step), leaf index): deterministic, new every step, no state. The
others: 'newton_schulz', <R, NS(R)> with the LMO's Newton-Schulz, in one batched call with the
momentum's (4-12 % below the exact value, as NS maps singular values into its band, see lmo.py;
it doubles the Newton-Schulz cost of a step), and 'exact' (SVD). noise_every=k updates the
estimate every k-th step only (a lax.cond; inside vmap it becomes a select and saves nothing).
The H EMA is not bias-corrected: a common factor cancels in the ratios. Weight decay is decoupled
and multiplied by the layer's own rate.

Place in a chain: it is the base optimizer, learning rate included (like optax.adamw). It reads the
raw gradient for its noise estimate, so put clipping, noise and TrAct before it and NaP after it.
The 'two_batch' estimator needs update(..., microbatch_grads=(g1, g2)): two gradient pytrees, each
from one half of the batch, whose mean is the gradient passed as `updates`.

The state holds `noise` (H_l) and `lr_scale` (r_l of the last step) per leaf, for logging.
"""
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from paperlab.errors import ConfigError
from paperlab.optim import lmo, nuclear_norm, paths

GROUPS = ('spectral', 'sign', 'vector')
ESTIMATORS = ('residual', 'two_batch')
DUAL_NORM_METHODS = ('lanczos', 'newton_schulz', 'exact')
LR_RULES = ('min', 'mean')
VECTOR_LMOS = ('sign', 'rms')
SIGN_KEYS = frozenset({'head', 'lm_head', 'unembed', 'embedding', 'token_embed', 'pos_embed',
                       'cls_token'})
_TINY = 1e-30
_PROBE_SEED = 0  # the Lanczos probes' key: fold_in(fold_in(key(_PROBE_SEED), step), leaf index)


def group_of(path: paths.Path, leaf: Any) -> str:
  """The default LANTON group of one parameter leaf (see the module docstring)."""
  if jnp.ndim(leaf) < 2:
    return 'vector'
  if any(isinstance(k, str) and k in SIGN_KEYS for k in path):
    return 'sign'
  return 'spectral'


def lmo_groups(params: Any) -> Any:
  """A tree like params of group labels 'spectral' | 'sign' | 'vector'."""
  leaves = jax.tree.leaves(params)
  labels = [group_of(p, x) for p, x in zip(paths.leaf_paths(params), leaves)]
  return jax.tree.unflatten(jax.tree.structure(params), labels)


class LantonState(NamedTuple):
  count: jax.Array   # int32 [], steps taken
  momentum: Any      # B_l, like params
  noise: Any         # H_l, float32 [] per leaf
  lr_scale: Any      # r_l of the last step, float32 [] per leaf


def _resolve_groups(groups, params) -> list[str]:
  labels = jax.tree.leaves(groups(params) if callable(groups) else groups)
  for label in labels:
    if label not in GROUPS:
      raise ConfigError(f'lanton group {label!r} is not valid; valid: {", ".join(GROUPS)}')
  return labels


def _check_choice(name: str, value: str, valid: Sequence[str]) -> None:
  if value not in valid:
    raise ConfigError(f'lanton {name}={value!r} is not valid; valid: {", ".join(valid)}')


def lanton(learning_rate: optax.ScalarOrSchedule, *, noise_adaptive: bool = True,
           estimator: str = 'residual', beta1: float = 0.95, beta2: float = 0.99,
           lr_rule: str = 'min', sign_lr_scale: float = 0.1, vector_lr_scale: float = 0.1,
           vector_lmo: str = 'sign', weight_decay: float = 0.0, nesterov: bool = False,
           ns_steps: int = 5, ns_coeffs: Sequence[float] = lmo.NS_COEFFS, noise_every: int = 1,
           adapt_vectors: bool = False, dual_norm_method: str = 'lanczos',
           groups: Any = None) -> optax.GradientTransformationExtraArgs:
  """LANTON (or, with noise_adaptive=False, the plain LMO optimizer); see the module docstring.

  Args:
    learning_rate: eta(t), the base rate of the 'spectral' group (float or optax schedule).
    noise_adaptive: scale each layer's rate by its noise ratio r_l.
    estimator: 'residual' (G - previous momentum) | 'two_batch' (needs microbatch_grads).
    beta1: momentum EMA rate. beta2: noise EMA rate.
    lr_rule: 'min' | 'mean', how r_l is normalized within a group.
    sign_lr_scale, vector_lr_scale: base rates of the 'sign' and 'vector' groups relative to eta.
    vector_lmo: 'sign' | 'rms', the geometry of the 'vector' group.
    weight_decay: decoupled, multiplied by each layer's rate.
    nesterov: feed beta1 B + (1 - beta1) G to the LMO instead of B.
    ns_steps, ns_coeffs: the Newton-Schulz iteration (lmo.newton_schulz).
    noise_every: update the noise estimate every k-th step.
    adapt_vectors: also scale the 'vector' group by its noise ratios (default: r_l = 1 there).
    dual_norm_method: 'lanczos' | 'newton_schulz' | 'exact', the 'spectral' group's nuclear norm.
    groups: a tree of group labels like params, or params -> tree; default `lmo_groups`.
  """
  _check_choice('estimator', estimator, ESTIMATORS)
  _check_choice('lr_rule', lr_rule, LR_RULES)
  _check_choice('vector_lmo', vector_lmo, VECTOR_LMOS)
  _check_choice('dual_norm_method', dual_norm_method, DUAL_NORM_METHODS)
  if not isinstance(noise_every, int) or noise_every < 1:
    raise ConfigError(f'lanton noise_every={noise_every!r} must be an int >= 1')
  groups = lmo_groups if groups is None else groups
  base_scale = {'spectral': 1.0, 'sign': sign_lr_scale, 'vector': vector_lr_scale}

  def init_fn(params):
    _resolve_groups(groups, params)
    scalar = lambda v: jax.tree.map(lambda _: jnp.full([], v, jnp.float32), params)
    return LantonState(count=jnp.zeros([], jnp.int32), momentum=optax.tree.zeros_like(params),
                       noise=scalar(0.0), lr_scale=scalar(1.0))

  def direction(label: str, b: jax.Array) -> jax.Array:
    if label == 'spectral':
      return lmo.lmo_spectral(b, ns_steps=ns_steps, ns_coeffs=ns_coeffs)
    if label == 'vector' and vector_lmo == 'rms':
      return lmo.lmo_rms(b)
    return lmo.lmo_sign(b)

  def dual_norm(label: str, r: jax.Array, key: jax.Array) -> jax.Array:
    if label == 'spectral':
      if dual_norm_method == 'lanczos':
        nuclear = nuclear_norm.nuclear_norm(r, key)
      elif dual_norm_method == 'exact':
        nuclear = nuclear_norm.nuclear_norm_exact(r)
      else:
        m = lmo.as_matrix(r).astype(jnp.float32)
        nuclear = jnp.sum(m * lmo.newton_schulz(m, ns_steps, ns_coeffs))
      return lmo.spectral_scale(r.shape) * nuclear
    if label == 'vector' and vector_lmo == 'rms':
      return lmo.dual_norm_rms(r)
    return lmo.dual_norm_sign(r)

  def direction_and_dual(label: str, b: jax.Array, r: jax.Array, key: jax.Array):
    """LMO(b) and ||r||_*; with 'newton_schulz' one batched NS call serves both."""
    if label != 'spectral' or dual_norm_method != 'newton_schulz':
      return direction(label, b), dual_norm(label, r, key)
    both = lmo.newton_schulz(jnp.stack([lmo.as_matrix(b), lmo.as_matrix(r)]), ns_steps, ns_coeffs)
    scale = lmo.spectral_scale(b.shape)
    d = (-scale * both[0]).reshape(b.shape).astype(b.dtype)
    return d, scale * jnp.sum(lmo.as_matrix(r).astype(jnp.float32) * both[1])

  def ratios(labels: list[str], noise: list[jax.Array]) -> list[jax.Array]:
    out = [None] * len(noise)
    for group in GROUPS:
      idx = [i for i, label in enumerate(labels) if label == group]
      if not idx:
        continue
      if group == 'vector' and not adapt_vectors:
        for i in idx:
          out[i] = jnp.ones([], jnp.float32)
        continue
      h = jnp.stack([noise[i] for i in idx]) + _TINY
      if lr_rule == 'min':
        r = jnp.sqrt(jnp.min(h) / h)
      else:
        inv = jax.lax.rsqrt(h)
        r = inv / jnp.mean(inv)
      for k, i in enumerate(idx):
        out[i] = r[k]
    return out

  def update_fn(updates, state, params=None, *, microbatch_grads=None, **extra_args):
    del extra_args
    decay = not (isinstance(weight_decay, (int, float)) and weight_decay == 0)
    if decay and params is None:
      raise ValueError('lanton with weight_decay needs params: tx.update(grads, state, params)')
    labels = _resolve_groups(groups, updates)
    grads, treedef = jax.tree.flatten(updates)
    momentum = jax.tree.leaves(state.momentum)
    noise = jax.tree.leaves(state.noise)
    count = optax.safe_increment(state.count)
    new_momentum = [beta1 * m + (1 - beta1) * g.astype(m.dtype) for m, g in zip(momentum, grads)]
    lmo_inputs = ([beta1 * m + (1 - beta1) * g for m, g in zip(new_momentum, grads)]
                  if nesterov else new_momentum)

    if noise_adaptive:
      if estimator == 'two_batch':
        if microbatch_grads is None:
          raise ConfigError("lanton estimator='two_batch' needs update(...,"
                            ' microbatch_grads=(grads_half_1, grads_half_2))')
        g1, g2 = (jax.tree.leaves(g) for g in microbatch_grads)
        residuals = [(a - b) / 2 for a, b in zip(g1, g2)]
        have_sample = jnp.asarray(True)
      else:
        correction = 1 - beta1 ** (count - 1).astype(jnp.float32)
        prev = [m / jnp.maximum(correction, _TINY) for m in momentum]
        residuals = [g - p for g, p in zip(grads, prev)]
        have_sample = count >= 2
      estimate_now = have_sample & (count % noise_every == 0)
      step_key = jax.random.fold_in(jax.random.key(_PROBE_SEED), count)
      keys = [jax.random.fold_in(step_key, i) for i in range(len(grads))]

      if noise_every == 1:
        pairs = [direction_and_dual(l, b, r, k)
                 for l, b, r, k in zip(labels, lmo_inputs, residuals, keys)]
        directions = [d for d, _ in pairs]
        samples = [jnp.square(v) for _, v in pairs]
      else:
        directions = [direction(l, b) for l, b in zip(labels, lmo_inputs)]
        samples = jax.lax.cond(
            estimate_now,
            lambda rs: [jnp.square(dual_norm(l, r, k)) for l, r, k in zip(labels, rs, keys)],
            lambda rs: [jnp.zeros([], jnp.float32) for _ in rs],
            residuals)
      noise = [jnp.where(estimate_now, beta2 * h + (1 - beta2) * v, h)
               for h, v in zip(noise, samples)]
      scales = ratios(labels, noise)
    else:
      directions = [direction(l, b) for l, b in zip(labels, lmo_inputs)]
      scales = [jnp.ones([], jnp.float32) for _ in grads]

    eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
    p_leaves = jax.tree.leaves(params) if decay else [None] * len(grads)
    out = []
    for label, d, r, p, g in zip(labels, directions, scales, p_leaves, grads):
      step = d.astype(jnp.float32)
      if p is not None:
        step = step - weight_decay * p.astype(jnp.float32)
      out.append((eta * base_scale[label] * r * step).astype(g.dtype))

    unflat = lambda leaves: jax.tree.unflatten(treedef, leaves)
    return unflat(out), LantonState(count=count, momentum=unflat(new_momentum),
                                    noise=unflat(noise), lr_scale=unflat(scales))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def layer_learning_rates(state: LantonState, learning_rate: float, *, groups: Any = None,
                         sign_lr_scale: float = 0.1,
                         vector_lr_scale: float = 0.1) -> dict[str, jax.Array]:
  """Each layer's rate eta_g * r_l of the last step, keyed 'a/0/linear/kernel' (for logging)."""
  groups = lmo_groups if groups is None else groups
  labels = _resolve_groups(groups, state.momentum)
  base = {'spectral': 1.0, 'sign': sign_lr_scale, 'vector': vector_lr_scale}
  scales = jax.tree.leaves(state.lr_scale)
  names = [paths.path_str(p) for p in paths.leaf_paths(state.momentum)]
  return {n: learning_rate * base[l] * s for n, l, s in zip(names, labels, scales)}

