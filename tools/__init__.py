"""Developer tools of falcoctl-py (not part of the installed runtime packages)."""
