"""LANTON (Hao et al. 2025, "Noise-Adaptive Layerwise Learning Rates"): an LMO optimizer
(Newton-Schulz for hidden matrices, sign for the embeddings and the head) whose per-layer rates
shrink with each layer's gradient noise, estimated in the dual norm of the layer's LMO.

A small ViT (paperlab.nn 'vit': patch 2, 16 tokens, 2 pre-LN blocks of width 64) on scikit-learn's
8x8 digits (offline), 300 steps, warmup + cosine. The variants are the paper's baselines: the
same LMO optimizer without noise adaptation (Scion / D-Muon style), and Muon (Newton-Schulz on
hidden matrices, AdamW on the rest, optax.contrib.muon).

Command:
  python -m paperlab.run --config configs/lanton.py           # LANTON (residual noise estimator)
  python -m paperlab.run --config configs/lanton.py:lmo       # noise_adaptive=False
  python -m paperlab.run --config configs/lanton.py:muon      # Muon

Expected result (measured on a 2-core CPU, 24 GiB, no GPU, jax 0.10.2; seed 0, one run each; the
same base rate 0.02 for all three): eval/accuracy at steps 100/200/300 is 0.856/0.922/0.922 for
LANTON (23 s wall, compile included; these 64-wide matrices get the exact nuclear norm, see
optim/nuclear_norm.py), 0.911/0.936/0.953 without noise adaptation and 0.881/0.928/0.936 for Muon
(about 32 s wall each, measured earlier). On this tiny task LANTON's smaller rates for noisier layers do not pay off
at an equal base rate.
"""

from paperlab import config as config_lib
from paperlab import data, nn, optim

VARIANTS = ("lanton", "lmo", "muon")


def get_config(arg: str | None = None):
  variant = arg or "lanton"
  if variant not in VARIANTS:
    raise ValueError(f"configs/lanton.py:<arg> takes one of {VARIANTS}, got {arg!r}")
  config = config_lib.base_config()
  config.total_steps = 300
  config.batch_size = 128
  config.log_every = 50
  config.eval_every = 100
  config.ckpt_every = 300

  config.data = data.default_config("digits")

  config.model = nn.default_config("vit")
  config.model.patch_size = 2
  config.model.d_model = 64
  config.model.num_layers = 2
  config.model.num_heads = 2
  config.model.mlp_ratio = 2.0

  config.optim = optim.default_config()
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_steps = 30
  config.optim.lr = 0.02
  if variant == "muon":
    config.optim.name = "muon"
    config.optim.muon_adam_lr = 2e-3
  else:
    config.optim.name = "lanton"
    config.optim.lanton_noise_adaptive = variant == "lanton"
  return config
