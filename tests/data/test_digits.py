"""Tests for paperlab/data/digits.py: the fixed stratified split and epoch-wise sampling."""
import numpy as np
from sklearn.datasets import load_digits

import paperlab.data as data
from paperlab.data import digits


def sorted_rows(images):
  flat = np.asarray(images).reshape(len(images), -1)
  return flat[np.lexsort(flat.T[::-1])]


def test_split_is_the_whole_dataset_stratified_and_scaled():
  train_x, train_y, test_x, test_y = digits.load_split()
  assert train_x.shape == (1437, 8, 8, 1) and test_x.shape == (360, 8, 8, 1)
  assert train_x.dtype == np.float32 and train_y.dtype == np.int32
  assert train_x.min() == 0.0 and train_x.max() == 1.0
  raw = load_digits()
  # Train and test together are exactly the 1797 images / 16 (as multisets) with their labels.
  all_x = np.concatenate([train_x, test_x])
  np.testing.assert_array_equal(sorted_rows(all_x), sorted_rows(raw.images / 16.0))
  np.testing.assert_array_equal(np.bincount(np.concatenate([train_y, test_y])),
                                np.bincount(raw.target))
  # Stratified: each class has 20 % of its images in the test split, up to rounding.
  test_share = np.bincount(test_y, minlength=10) / np.bincount(raw.target)
  np.testing.assert_allclose(test_share, 0.2, atol=0.02)
  # Labels belong to their images: every image/label pair of the split exists in the raw data.
  raw_pairs = {(img.tobytes(), int(lab)) for img, lab in
               zip((raw.images / 16.0).astype(np.float32), raw.target)}
  assert all((img[..., 0].tobytes(), int(lab)) in raw_pairs for img, lab in zip(test_x, test_y))


def test_one_epoch_visits_every_training_image_once_then_reshuffles():
  batch_size = 4  # 1437 = 359 * 4 + 1: batches straddle the epoch boundary
  source = data.build(data.default_config("digits"), batch_size=batch_size)
  train_x, train_y, _, _ = digits.load_split()
  steps = -(-2 * 1437 // batch_size)  # two epochs
  batches = [source.host_batch(s) for s in range(steps)]
  xs = np.concatenate([b["x"] for b in batches])
  ys = np.concatenate([b["y"] for b in batches])
  for epoch in range(2):
    window = slice(epoch * 1437, (epoch + 1) * 1437)
    np.testing.assert_array_equal(sorted_rows(xs[window]), sorted_rows(train_x))
    np.testing.assert_array_equal(np.bincount(ys[window]), np.bincount(train_y))
  assert not np.array_equal(xs[:1437], xs[1437:2 * 1437])
  assert all(b["mask"].shape == (batch_size,) and b["mask"].min() == 1.0 for b in batches)


def test_data_seed_changes_the_order_only():
  cfg = data.default_config("digits")
  cfg.seed = 1
  other = data.build(cfg, batch_size=4)
  base = data.build(data.default_config("digits"), batch_size=4)
  assert not np.array_equal(other.host_batch(0)["x"], base.host_batch(0)["x"])
  assert other.describe() == base.describe() == "digits: 1437 train / 360 test, 8x8x1, 10 classes"


def test_eval_is_the_test_split_padded():
  source = data.build(data.default_config("digits"), batch_size=4)
  _, _, test_x, test_y = digits.load_split()
  batches = list(source.eval_batches(64))
  assert len(batches) == 6 and all(b["x"].shape == (64, 8, 8, 1) for b in batches)
  assert batches[-1]["mask"].sum() == 360 - 5 * 64 and batches[-1]["mask"][-1] == 0
  keep = np.concatenate([b["mask"] for b in batches]) > 0
  np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches])[keep], test_x)
  np.testing.assert_array_equal(np.concatenate([b["y"] for b in batches])[keep], test_y)
  # The same held-out data whatever the step and the data seed.
  again = list(source.eval_batches(64, step=5000))
  np.testing.assert_array_equal(again[0]["x"], batches[0]["x"])
