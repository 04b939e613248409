"""paperlab.data."""
