"""Artifact indexes: the format (``model``), fetching (``fetch``), the local cache and the index
commands (``cache``), merging and search (``search``)."""
