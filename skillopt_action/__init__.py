"""skillopt-action: train agent skill files on scored tasks, gated by statistics."""

__version__ = "0.1.0"
