"""`digits`: scikit-learn's bundled 8x8 handwritten digits (real data, offline), on device.

Alpaydin & Kaynak's optical digits as shipped with scikit-learn (`sklearn.datasets.load_digits`):
1797 grey images of 8x8 pixels with values 0..16, ten classes. We scale pixels to [0, 1] (divide
by 16) and keep a channel axis, so an example is float32 (8, 8, 1).

Split (our choice; the data come without one): a stratified 80/20 split by
`sklearn.model_selection.train_test_split(test_size=0.2, stratify=labels, random_state=0)`,
which gives 1437 training and 360 test images. It is fixed: the data seed only changes the order
in which the training images are visited (`paperlab.data.sampling`), never the split.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from paperlab.data import config as config_lib
from paperlab.data import sampling
from paperlab.data.source import Source, padded_batches

TEST_FRACTION = 0.2
SPLIT_RANDOM_STATE = 0


def default_config(name: str = "digits") -> ml_collections.ConfigDict:
  return config_lib.base_config(name)


@functools.cache
def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(train_x, train_y, test_x, test_y): images float32 [N, 8, 8, 1] in [0, 1], labels int32."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = (digits.images / 16.0).astype(np.float32)[..., None]
  labels = digits.target.astype(np.int32)
  train_x, test_x, train_y, test_y = train_test_split(
      images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_RANDOM_STATE)
  for array in (train_x, test_x, train_y, test_y):
    array.setflags(write=False)  # cached and shared: nobody may edit it in place
  return train_x, train_y, test_x, test_y


class DigitsSource(Source):
  """The digits training split on device, visited epoch by epoch without replacement."""

  task = "classification"
  input_dtype = jnp.float32
  vocab_size = None
  output_dim = 10
  on_device = True

  def __init__(self, config: ml_collections.ConfigDict, batch_size: int):
    super().__init__(config, batch_size)
    train_x, train_y, self._test_x, self._test_y = load_split()
    self.num_train = len(train_x)
    self.input_shape = tuple(train_x.shape[1:])
    self.device_data = {"x": jax.device_put(train_x), "y": jax.device_put(train_y)}

  def sample(self, device_data, step):
    idx = sampling.epoch_batch_indices(self.seed, step, self.batch_size, self.num_train)
    return {"x": device_data["x"][idx], "y": device_data["y"][idx],
            "mask": jnp.ones((self.batch_size,), jnp.float32)}

  def eval_batches(self, batch_size, step=0):
    del step  # the test split does not change
    return padded_batches({"x": self._test_x, "y": self._test_y,
                           "mask": np.ones(len(self._test_y), np.float32)}, batch_size)

  def describe(self):
    return (f"{self.name}: {self.num_train} train / {len(self._test_y)} test, 8x8x1, "
            f"{self.output_dim} classes")


def build(config: ml_collections.ConfigDict, batch_size: int) -> DigitsSource:
  return DigitsSource(config, batch_size)
