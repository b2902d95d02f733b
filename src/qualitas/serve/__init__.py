"""The HTTP scoring service behind ``qualitas serve`` (docs/serving.md)."""

from qualitas.serve.app import ServeConfig, ThreadedServer, create_app, serve

__all__ = ["ServeConfig", "ThreadedServer", "create_app", "serve"]
