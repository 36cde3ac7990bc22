"""Benchmarks: applications of the library, each a module with one entry point (`omnifuse bench ...`).

Nothing in the library imports this package; speed figures are ratios against a baseline measured
in the same run, never timed tests.
"""
