"""TrAct (Petersen, Borgelt, Ermon, NeurIPS 2024): the first layer's kernel gradient is replaced by
(x^T x / b + lam I)^{-1} G, a closed-form step on its pre-activations.

A 2-hidden-layer MLP on scikit-learn's 8x8 digits (offline): the first Dense layer reads the raw
pixels in [0, 1] (n = 64 features, b = 128 rows per batch), the setting TrAct targets, where the
first layer's update scales with pixel values. SGD with momentum 0.9, a cosine schedule, lam = 0.1
and the same learning rate with and without TrAct (as in the paper). With a 'cnn' or 'vit' model
the same field preconditions its conv stem or patch embedding: the trainer builds the patch rows
from the model's `tract_spec`.

Command:
  python -m paperlab.run --config configs/tract.py             # TrAct, lam = 0.1
  python -m paperlab.run --config configs/tract.py:baseline    # the same run without TrAct

Expected result (measured on a 2-core CPU, 24 GiB, no GPU, jax 0.10.2; seed 0, one run each):
eval/accuracy at steps 50/100/150/200 is 0.947/0.969/0.972/0.972 with TrAct and
0.931/0.958/0.964/0.961 without (8 s and 9 s wall, compile included; 18 s and 12 s when
first measured, before the OpenBLAS thread fix of paperlab/cpu.py and on a busier machine).
"""

from paperlab import config as config_lib
from paperlab import data, nn, optim


def get_config(arg: str | None = None):
  if arg not in (None, "", "baseline"):
    raise ValueError(f"configs/tract.py takes no arg or ':baseline', got {arg!r}")
  config = config_lib.base_config()
  config.total_steps = 200
  config.batch_size = 128
  config.log_every = 25
  config.eval_every = 50
  config.ckpt_every = 200

  config.data = data.default_config("digits")

  config.model = nn.default_config("mlp")
  config.model.depth = 2
  config.model.width = 256

  config.optim = optim.default_config()
  config.optim.name = "momentum"
  config.optim.lr = 0.05
  config.optim.momentum = 0.9
  config.optim.schedule = "cosine"
  if arg != "baseline":
    config.optim.tract_lam = 0.1
  return config
