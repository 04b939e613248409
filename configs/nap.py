"""NaP, Normalize-and-Project (Lyle et al., NeurIPS 2024): LayerNorm before every activation, and
after every optimizer step each hidden kernel is rescaled to its initial Frobenius norm, so that
the effective learning rate eta / ||W||^2 stays what the schedule says.

The plasticity benchmark of the paper in miniature: memorize random labels of 1000 digit images
(paperlab.data 'random_labels'), redrawn every 500 steps. A 2-hidden-layer MLP with LayerNorm,
Adam at a constant rate. Evaluation every 250 steps measures, mid-phase, how much of the current
labelling the network has memorized after 250 steps on it (at a multiple of 500 a new labelling
has just been drawn, so those evaluations sit near chance).

Command:
  python -m paperlab.run --config configs/nap.py             # LayerNorm + projection
  python -m paperlab.run --config configs/nap.py:baseline    # LayerNorm only

Expected result (measured on a 2-core CPU, 24 GiB, no GPU, jax 0.10.2; seed 0, one run each):
mid-phase memorization accuracy 0.956 in the first phase, then 0.648/0.725/0.712/0.688/0.764/0.759
(mean 0.716) with NaP and 0.668/0.691/0.725/0.756/0.710/0.750 (mean 0.717) without: no difference
at this short horizon, while the global parameter norm grows 33.6 -> 37.5 with NaP (only the head
and norm parameters, which are not projected) and 34.8 -> 44.7 without (28 s and 24 s wall).
"""

from paperlab import config as config_lib
from paperlab import data, nn, optim


def get_config(arg: str | None = None):
  if arg not in (None, "", "baseline"):
    raise ValueError(f"configs/nap.py takes no arg or ':baseline', got {arg!r}")
  config = config_lib.base_config()
  config.total_steps = 3250
  config.batch_size = 128
  config.log_every = 250
  config.eval_every = 250
  config.ckpt_every = 3250

  config.data = data.default_config("random_labels")
  config.data.num_examples = 1000
  config.data.reshuffle_every = 500

  config.model = nn.default_config("mlp")
  config.model.depth = 2
  config.model.width = 256
  config.model.norm = "layernorm"   # kernels feed `linear_norm`: what NaP projects

  config.optim = optim.default_config()
  config.optim.name = "adamw"
  config.optim.lr = 1e-3
  config.optim.nap = arg != "baseline"
  return config
