"""cosign-compatible signatures: verification (key and keyless, offline) and signing."""
