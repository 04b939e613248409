"""The example configs of the four papers (configs/{grad_noise,tract,nap,lanton}.py) build and train
a few steps through the trainer, with the extra update arguments each transform needs."""
import json
import pathlib

import pytest

from paperlab import config as config_lib
from paperlab import optim
from paperlab import train

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ['grad_noise.py', 'tract.py', 'nap.py', 'lanton.py']
VARIANTS = ['grad_noise.py:baseline', 'tract.py:baseline', 'nap.py:baseline', 'lanton.py:lmo',
            'lanton.py:muon']


def _short(config, steps=4):
  config.total_steps = steps
  config.log_every = config.eval_every = config.ckpt_every = steps
  config.log.progress = False
  config.log.plot = False
  config.optim.warmup_steps = min(config.optim.warmup_steps, 1)
  config.mesh.data = 1  # one of the fake test devices: compiles faster than 8-way data parallel
  # Smaller models compile faster; the optimizer path is the one the config switches on.
  if config.model.name == 'mlp':
    config.model.depth = min(config.model.depth, 2)
  if config.model.name == 'vit':
    config.model.num_layers = 1
  return config


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_example_config_trains(name, tmp_path):
  config = _short(config_lib.load(str(REPO / 'configs' / name)))
  assert any(config.optim[f] for f in ('grad_noise_eta', 'tract_lam', 'nap')) or (
      config.optim.name == 'lanton' and config.optim.lanton_noise_adaptive)
  train.train_and_evaluate(config, tmp_path)
  lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  final = [line for line in lines if 'eval/loss' in line]
  assert final and final[-1]['step'] == 4
  assert all(abs(v) < 1e6 for v in final[-1].values() if isinstance(v, float))


@pytest.mark.parametrize('name', VARIANTS)
def test_variants_are_valid_and_switch_the_paper_off(name):
  """Each variant passes the trainer's and the optimizer's config checks (no model is built)."""
  config = config_lib.load(str(REPO / 'configs' / name))
  config_lib.validate(config)
  assert optim.extra_args_needed(config.optim) == set()  # resolves and validates config.optim
  assert config.optim.tract_lam is None and config.optim.grad_noise_eta is None
  assert not config.optim.nap and not (config.optim.name == 'lanton'
                                       and config.optim.lanton_noise_adaptive)
