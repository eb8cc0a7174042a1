"""Falco's rules language: rules files in, compiled rules out, alerts formatted.

The path through it, package by package:

- :mod:`~detector.rules.load`: rules files -> YAML (bounded) -> definitions (define, append,
  override) -> Falco's compile pipeline (lists, exceptions, macros, outputs) -> a ``Ruleset``.
- :mod:`~detector.rules.lang`: condition text -> syntax tree (scanner, parser, escaping).
- :mod:`~detector.rules.fields`: Falco's field and event tables, and how each field is read
  from an event.
- :mod:`~detector.rules.eval`: a syntax tree -> checks planned once -> generated Python
  (``codegen``) or the plain reference walk, fused per event type (``dispatch``).
- :mod:`~detector.rules.engine` runs a ruleset on events; :mod:`~detector.rules.output` formats
  alerts; :mod:`~detector.rules.commands` is the core of the ``rules`` CLI commands.
"""
