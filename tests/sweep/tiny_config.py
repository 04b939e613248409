"""A tiny quickstart for the sweep tests: 40 steps of a width-16 MLP on digits, 4 trials (lr x seed).

The optimizer constants are dyadic (exact in float32), so a trial's numbers do not depend on whether
its hyperparameters are Python floats (a run by itself) or float32 arrays in the optimizer state
(--vectorize): with 0.9 or 1e-3, `1 - b1` rounds differently in the two, and training amplifies
that to about 1e-3 relative after 60 steps. The vectorized == sequential test then checks the
machinery (vmap, shared batches, seeds, masking, sharding), not that rounding.
"""
import pathlib

from paperlab import config as config_lib
from paperlab import sweep

QUICKSTART = pathlib.Path(__file__).resolve().parents[2] / "configs" / "quickstart.py"


def get_config(arg=None):
  del arg
  config = config_lib.load_module(str(QUICKSTART)).get_config()
  config.total_steps = 40
  config.log_every = 10
  config.eval_every = 20
  config.ckpt_every = 40  # one save at the end: Orbax saves cost more than these runs
  config.model.width = 16
  config.log.progress = False
  config.log.plot = False
  config.optim.warmup_steps = 5
  config.optim.lr = 2.0**-8
  config.optim.b1 = 0.875
  config.optim.b2 = 1 - 2.0**-10
  config.optim.eps = 2.0**-27
  config.optim.weight_decay = 2.0**-13
  return config


def get_sweep(arg=None):
  del arg
  return sweep.product(sweep.axis("optim.lr", [2.0**-9, 2.0**-7]), sweep.axis("seed", [0, 1]))
