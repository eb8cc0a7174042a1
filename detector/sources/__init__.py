"""Event sources: the eBPF source, capture replay, plugin sources."""
