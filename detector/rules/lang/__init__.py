"""The condition language: text scanned and parsed into a syntax tree (libsinsp's grammar)."""
