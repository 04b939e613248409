"""Quickstart: a 2-layer MLP on scikit-learn's bundled 8x8 handwritten digits (real data, offline).

Command:
  python -m paperlab.run --config configs/quickstart.py

Expected result: eval/accuracy >= 0.95 on the fixed 360-image test split after 1500 steps; the whole
run, compile included, takes well under 60 s on 2 CPU cores (see README for the measured numbers).

Try: --config.optim.lr=3e-3, --config.model.width=64, --config.total_steps=500.
"""

from paperlab import config as config_lib
from paperlab import data, nn, optim


def get_config(arg: str | None = None):
  config_lib.parse_arg(arg)  # no structural variants: any :arg is an error naming the valid ones
  config = config_lib.base_config()
  config.total_steps = 1500
  config.batch_size = 128
  config.eval_batch_size = 512
  config.log_every = 50
  config.eval_every = 500
  config.ckpt_every = 500

  config.data = data.default_config("digits")

  config.model = nn.default_config("mlp")
  config.model.depth = 2
  config.model.width = 256

  config.optim = optim.default_config()
  config.optim.name = "adamw"
  config.optim.lr = 2e-3
  config.optim.weight_decay = 1e-4
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_steps = 100
  return config


def get_sweep(arg: str | None = None):
  """Learning rate x seed: `python -m paperlab.sweep --config configs/quickstart.py --workdir runs/qs_sweep`.

  Add `--vectorize` to train all 8 trials as one program (they differ only in optim.lr and seed).
  """
  del arg  # get_config has no variants (it rejects any :arg)
  from paperlab import sweep  # pylint: disable=import-outside-toplevel
  seeds = sweep.axis("seed", [0, 1])  # averaged over in the results table, never tuned
  return sweep.product(sweep.axis("optim.lr", [5e-4, 1e-3, 2e-3, 4e-3]), seeds)
