"""Keyword-only typed actions the CLI calls, one module per command group."""
