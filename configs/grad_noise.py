"""Gradient noise (Neelakantan et al. 2015): a deep narrow MLP trained with plain SGD from "Simple
Init", with annealed Gaussian noise sigma_t^2 = eta / (1 + t)^0.55 added after clipping.

The paper's MNIST setting is 20 hidden layers of 50 units, N(0, 0.1^2) weights ("Simple Init"),
SGD without momentum, gradients clipped to norm 10 and eta = 0.01. Here: scikit-learn's 8x8 digits
(offline), 10 hidden layers of 50 units so that it trains in 3000 steps on a CPU, SGD at lr 0.1.
At depth 20 neither run leaves chance level within this budget.

Command:
  python -m paperlab.run --config configs/grad_noise.py             # with noise (eta = 0.01)
  python -m paperlab.run --config configs/grad_noise.py:baseline    # the same run without noise

Expected result (measured on a 2-core CPU, 24 GiB, no GPU, jax 0.10.2; seed 0, one run each):
eval/accuracy 0.958 at step 3000 with noise, 0.925 without (27 s and 19 s wall, compile included).
One seed: the paper's claim is about the spread over many restarts; compare five of each with
  python -m paperlab.sweep --config configs/grad_noise.py --workdir runs/gn --axis seed=0,1,2,3,4 --vectorize
  python -m paperlab.sweep --config configs/grad_noise.py:baseline --workdir runs/gn0 --axis seed=0,1,2,3,4 --vectorize
"""

from paperlab import config as config_lib
from paperlab import data, nn, optim


def get_config(arg: str | None = None):
  if arg not in (None, "", "baseline"):
    raise ValueError(f"configs/grad_noise.py takes no arg or ':baseline', got {arg!r}")
  config = config_lib.base_config()
  config.total_steps = 3000
  config.batch_size = 128
  config.log_every = 100
  config.eval_every = 1000
  config.ckpt_every = 3000

  config.data = data.default_config("digits")

  config.model = nn.default_config("mlp")
  config.model.depth = 10
  config.model.width = 50
  config.model.init = "simple"      # N(0, init_std^2) kernels: the paper's "Simple Init"
  config.model.init_std = 0.1

  config.optim = optim.default_config()
  config.optim.name = "sgd"
  config.optim.lr = 0.1
  config.optim.clip_norm = 10.0
  if arg != "baseline":
    config.optim.grad_noise_eta = 0.01
    config.optim.grad_noise_gamma = 0.55
  return config
