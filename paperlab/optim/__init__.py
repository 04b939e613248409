"""paperlab.optim."""
