"""paperlab.sweep."""
