"""Artifacts: references, install plans, the transaction, state, lock, archive, falco.yaml."""
