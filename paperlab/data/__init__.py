"""paperlab.data: sources that yield batch i as a pure function of (data seed, i).

  default_config(name) -> ConfigDict   every field a source reads, with defaults
  build(config.data, batch_size=B)     -> Source (see `paperlab.data.source`)

Sources: 'digits' (scikit-learn's 8x8 digits, real and offline), 'icl_regression' (in-context
linear regression), 'mqar' (Zoology's multi-query associative recall), 'random_labels' (the
plasticity benchmark) and 'tfds:<dataset>' (TensorFlow Datasets through grain, no TensorFlow).
This package is the only one that imports tensorflow_datasets, grain or scikit-learn.
"""
from paperlab.data.registry import build, default_config, names
from paperlab.data.source import Source

__all__ = ["Source", "build", "default_config", "names"]
