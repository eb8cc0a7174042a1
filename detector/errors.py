"""Errors of the detector; they derive from the project's one exception root."""

from falcoctl_py.errors import DetectorError, LocatedError

__all__ = ["DetectorError", "LocatedError"]
