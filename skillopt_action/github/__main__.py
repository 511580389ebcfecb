"""`python -m skillopt_action.github`: the GitHub Action entry point."""

from .action import run

raise SystemExit(run())
