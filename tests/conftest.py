"""Test session setup: 8 fake CPU devices for the sharding tests, and quiet TF/absl logs."""
import os

# Must be set before jax is imported anywhere in the session.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
