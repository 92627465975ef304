"""The ``mwl-broker`` command line: one module per command (``broker.cli.main`` dispatches)."""

from broker.cli.main import main

__all__ = ["main"]
