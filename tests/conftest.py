"""Shared fixtures: `model_server` (a started scripted model server on 127.0.0.1, see model_server.py)."""

pytest_plugins = ["model_server"]
