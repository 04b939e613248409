"""paperlab: paper optimizers, efficient sequence-model kernels and reproducible JAX experiments."""

__version__ = "0.1.0"
