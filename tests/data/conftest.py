"""Shared small data configs: tests that use the same config (and batch size 4) share compiled
functions, which keeps the data tests within their time budget."""
import pytest

import paperlab.data as data

SMALL = {
    "digits": {},
    "icl_regression": {"dim": 3, "num_points": 5, "num_eval": 10},
    "mqar": {"vocab_size": 32, "seq_len": 16, "num_kv_pairs": 2, "num_eval": 10},
    "random_labels": {"inputs": "gaussian", "num_examples": 20, "dim": 3, "num_classes": 5,
                      "reshuffle_every": 10},
}


@pytest.fixture
def small_config():
  """small_config(name, **overrides) -> the default config of `name` with small sizes."""
  def make(name, **overrides):
    cfg = data.default_config(name)
    cfg.update({**SMALL[name], **overrides})
    return cfg
  return make
