"""Rules files to a compiled ruleset: YAML, definitions, Falco's compile pipeline, results."""
