"""skillopt-action: train agent skill files on scored tasks, gated by statistics.

The public Python API is `skillopt_action.api` (`validate`, `evaluate`, `optimize`, `compare`); its main
names are re-exported here.
"""

__version__ = "0.1.0"

from .api import Report, RunResult, Validation, compare, evaluate, load_config, optimize, validate  # noqa: E402

__all__ = ["Report", "RunResult", "Validation", "__version__", "compare", "evaluate", "load_config", "optimize",
           "validate"]
