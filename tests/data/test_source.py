"""Tests for paperlab/data/source.py: eval padding and the host_batch default."""
import numpy as np
import pytest

from paperlab.data.source import padded_batches
from paperlab.errors import ConfigError


def test_padded_batches_round_trip_and_zero_mask_on_padding():
  x = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
  y = np.arange(7, dtype=np.int32) + 1
  mask = np.ones((7, 2), np.float32)
  batches = list(padded_batches({"x": x, "y": y, "mask": mask}, 3))
  assert len(batches) == 3
  for batch in batches:
    assert batch["x"].shape == (3, 3) and batch["y"].shape == (3,) and batch["mask"].shape == (3, 2)
    assert batch["x"].dtype == np.float32 and batch["y"].dtype == np.int32
  last = batches[-1]
  np.testing.assert_array_equal(last["mask"], [[1, 1], [0, 0], [0, 0]])
  np.testing.assert_array_equal(last["y"], [7, 0, 0])
  keep = np.concatenate([b["mask"][:, 0] for b in batches]) > 0
  np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches])[keep], x)
  np.testing.assert_array_equal(np.concatenate([b["y"] for b in batches])[keep], y)


def test_exact_multiple_has_no_padding():
  batches = list(padded_batches({"x": np.zeros((6, 1)), "mask": np.ones(6)}, 3))
  assert len(batches) == 2 and all(b["mask"].sum() == 3 for b in batches)


def test_bad_batch_size_is_a_config_error():
  with pytest.raises(ConfigError, match="eval batch size"):
    list(padded_batches({"mask": np.ones(3)}, 0))
