"""Tests for paperlab/data/random_labels.py: labels fixed within a phase, redrawn across phases."""
import numpy as np
import pytest

import paperlab.data as data
from paperlab.data import digits
from paperlab.errors import ConfigError


def labels_by_input(batches):
  """{input bytes: label} from (x, y) pairs; asserts that no input gets two labels."""
  table = {}
  for batch in batches:
    for x, y, m in zip(batch["x"], batch["y"], batch["mask"]):
      if m > 0:
        assert table.setdefault(x.tobytes(), int(y)) == int(y)
      # else: a padded row
  return table


def test_labels_are_constant_within_a_phase_and_redrawn_between_phases(small_config):
  source = data.build(small_config("random_labels"), batch_size=4)  # K = 10 steps, 5 classes
  assert source.input_shape == (3,) and source.output_dim == 5 and source.num_examples == 20
  phase0 = labels_by_input(source.host_batch(s) for s in range(10))  # 40 draws: all 20 inputs
  phase1 = labels_by_input(source.host_batch(s) for s in range(10, 20))
  assert len(phase0) == len(phase1) == 20
  # Eval at any step of a phase = the phase's labels on all inputs, in a fixed order.
  for step in (0, 9):
    assert labels_by_input(source.eval_batches(8, step=step)) == phase0
  assert labels_by_input(source.eval_batches(8, step=15)) == phase1
  agree = np.mean([phase0[k] == phase1[k] for k in phase0])
  assert agree < 0.6  # independent uniform labels agree with probability 1/5


def test_label_distribution_is_uniform_and_phases_are_independent():
  source = data.build({"name": "random_labels", "num_classes": 10}, batch_size=8)
  labels = np.stack([np.asarray(source.phase_labels(p)) for p in range(4)])  # [4, 1437]
  counts = np.bincount(labels.ravel(), minlength=10)
  expected = labels.size / 10
  assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))
  assert np.mean(labels[0] == labels[1]) < 0.15


def test_digits_inputs_are_the_digits_training_images():
  source = data.build({"name": "random_labels", "num_examples": 100}, batch_size=8)
  train_x = digits.load_split()[0]
  np.testing.assert_array_equal(np.asarray(source.device_data["x"]), train_x[:100])
  assert source.input_shape == (8, 8, 1)
  assert "100 digits inputs" in source.describe()


@pytest.mark.parametrize("overrides,match", [
    ({"inputs": "mnist"}, "inputs must be one of digits, gaussian"),
    ({"dim": 5}, "dim only applies to inputs='gaussian'"),
    ({"num_examples": 5000}, r"num_examples must be in \[1, 1437\]"),
    ({"num_classes": 1}, "num_classes must be >= 2"),
    ({"reshuffle_every": 0}, "reshuffle_every must be >= 1"),
    ({"inputs": "gaussian", "dim": 0}, "dim must be >= 1"),
])
def test_bad_values(overrides, match):
  with pytest.raises(ConfigError, match=match):
    data.build({"name": "random_labels", **overrides}, batch_size=4)
