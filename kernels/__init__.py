"""paperlab.kernels: chunked linear-attention and delta-rule scans (Pallas, XLA and reference paths)."""
