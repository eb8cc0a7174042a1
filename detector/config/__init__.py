"""falco.yaml: read once into a typed, frozen model (:class:`FalcoConfig`).

:func:`load_config` reads the file (or the embedded default), merges ``config_files``,
expands ``${VAR}``, applies ``-o`` and ``-r``, and checks every value (types, ranges, choices)
so that ``--dry-run`` catches a bad one; unknown keys are warned about once each, with their
key path. Defaults live in :mod:`detector.config.model` only.
"""

from __future__ import annotations

from detector.config.load import expand_env, load_config
from detector.config.model import (
    EBPF_STAND_INS,
    ENGINE_KINDS,
    PRIORITIES,
    Engine,
    FalcoConfig,
    HttpOutput,
    MetricsConfig,
    SyscallEventDrops,
    Webserver,
)
from detector.config.overrides import apply_override
from detector.config.paths import DEFAULT_PLUGINS_DIR, data_dir, default_text, expand_rules_paths
from detector.config.sections import (
    AppendOutput,
    ConfigInclude,
    ExtraField,
    PluginConfig,
    RuleSelector,
)

__all__ = [
    "DEFAULT_PLUGINS_DIR", "EBPF_STAND_INS", "ENGINE_KINDS", "PRIORITIES", "AppendOutput",
    "ConfigInclude", "Engine", "ExtraField", "FalcoConfig", "HttpOutput", "MetricsConfig",
    "PluginConfig", "RuleSelector", "SyscallEventDrops", "Webserver", "apply_override",
    "data_dir", "default_text", "expand_env", "expand_rules_paths", "load_config",
]
