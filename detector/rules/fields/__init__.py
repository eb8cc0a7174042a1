"""Falco's fields: the field and event tables, the registry, extractors and renderings."""
