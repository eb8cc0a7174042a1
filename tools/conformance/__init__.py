"""The conformance runner: the rules engine against the upstream-derived test vectors.

Run as ``python -m tools.conformance CONFORMANCE_DIR [RULES_DIR] [-v]`` from the repository
root (``make conformance``).
"""

from tools.conformance.runner import Score, main, run

__all__ = ["Score", "main", "run"]
