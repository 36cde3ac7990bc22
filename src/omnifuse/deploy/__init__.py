"""Deployment: benchmarks now; compression, export and the runtime come next."""
