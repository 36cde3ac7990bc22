"""Demos: end-to-end applications of the library on synthetic data (`omnifuse demo ...`).

Nothing in the library imports this package.
"""
