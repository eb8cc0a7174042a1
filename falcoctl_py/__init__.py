"""falcoctl-py: Falco's artifact manager, in Python."""

__version__ = "0.1.0"
