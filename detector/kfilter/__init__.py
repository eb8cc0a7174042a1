"""Kernel filters derived from the loaded rules (atoms, build, plan; maps in bpf/kfmaps.py)."""
