"""paperlab.nn."""
