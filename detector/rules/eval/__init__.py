"""Evaluating conditions: checks planned once, generated code, the reference walk, dispatch."""
