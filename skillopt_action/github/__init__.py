"""The GitHub layer: the only place that knows GitHub. Entry point: `skillopt_action.github.action.run()`."""
