"""Kernel filters derived from the loaded rules (see ``detector.kfilter.analysis``)."""
