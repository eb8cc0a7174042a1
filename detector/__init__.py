"""The falcoctl-py detector: a Falco-compatible rules engine fed by an eBPF event source.

Nothing under ``detector`` imports typer, rich or ``falcoctl_py.cli``.
"""
