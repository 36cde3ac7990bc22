"""Small reusable layers."""

from omnifuse.layers.projection import PROJECTIONS, build_projection, projection_config

__all__ = ["PROJECTIONS", "build_projection", "projection_config"]
