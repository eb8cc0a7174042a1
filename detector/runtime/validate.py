"""``rules validate -c falco.yaml``: validate rules files as Falco's ``-V`` does with a config,
the config's plugins loaded (``load_plugins``), so a plugin's rules file compiles against its
fields and sources and ``required_plugin_versions`` is checked against the loaded versions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from detector.config import expand_rules_paths, load_config
from detector.rules.commands import ValidationReport


def validate_with_config(*, config_path: Path, paths: Sequence[str | os.PathLike[str]],
                         first_error: bool = False) -> ValidationReport:
    """Load the config and its plugins, then every file in turn into one engine (``paths``,
    or the config's ``rules_files`` when none); plugins are destroyed afterwards."""
    from detector.plugins import load_plugins
    from detector.plugins.fields import source_providers
    from detector.rules.fields.static import with_static_fields
    from detector.rules.load.loader import PROVIDED_PLUGINS, RulesLoader, expand_paths

    config = load_config(path=config_path)
    files = [str(p) for p in paths] or [str(p) for p in expand_rules_paths(config.rules_files)]
    plugins = load_plugins(config)  # a missing library: one error naming plugin and path
    try:
        sources = ["syscall", *sorted(plugins.sources())]
        providers = with_static_fields(source_providers(plugins), sources, config.static_fields)
        loader = RulesLoader(sources=sources, plugins={**PROVIDED_PLUGINS, **plugins.versions()},
                             collect=not first_error, providers=providers)
        for path in expand_paths(files):
            result = loader.load_file(path)
            result.errors.extend(loader.check_plugin_requirements())
        return ValidationReport(loader.ruleset().results)
    finally:
        plugins.destroy()
