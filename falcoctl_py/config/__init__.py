"""falcoctl's ``falcoctl.yaml`` and ``FALCOCTL_*`` variables as one layered, typed model.

``model`` holds the dataclasses, the defaults and the value parsers; ``load`` reads the file
(bounded) and layers the environment on top; ``edit`` rewrites one key of the file in place.
The names below are the package's interface.
"""

from __future__ import annotations

from falcoctl_py.config.edit import (
    add_gcp_registry,
    read_file_indexes,
    save_driver,
    save_indexes,
)
from falcoctl_py.config.load import config_from_data, load_config, read_config_file
from falcoctl_py.config.model import (
    ARTIFACT_TYPES,
    DEFAULT_ASSETS_DIR,
    DEFAULT_DRIVER,
    DEFAULT_FALCO_VERSIONS,
    DEFAULT_FOLLOW_EVERY,
    DEFAULT_INDEX_NAME,
    DEFAULT_INDEX_URL,
    DEFAULT_PLUGINS_DIR,
    DEFAULT_RULESFILES_DIR,
    DEFAULT_STATE_DIR,
    INDEX_BACKENDS,
    STARTUP_BEHAVIORS,
    ArtifactConfig,
    BasicAuth,
    Config,
    FollowConfig,
    IndexRef,
    InstallConfig,
    InvalidDuration,
    OAuthClient,
    RegistryConfig,
    default_creds_config,
    default_file_content,
    parse_bool,
    parse_duration,
    pick,
    user_config_dir,
)

__all__ = [
    "ARTIFACT_TYPES",
    "DEFAULT_ASSETS_DIR",
    "DEFAULT_DRIVER",
    "DEFAULT_FALCO_VERSIONS",
    "DEFAULT_FOLLOW_EVERY",
    "DEFAULT_INDEX_NAME",
    "DEFAULT_INDEX_URL",
    "DEFAULT_PLUGINS_DIR",
    "DEFAULT_RULESFILES_DIR",
    "DEFAULT_STATE_DIR",
    "INDEX_BACKENDS",
    "STARTUP_BEHAVIORS",
    "ArtifactConfig",
    "BasicAuth",
    "Config",
    "FollowConfig",
    "IndexRef",
    "InstallConfig",
    "InvalidDuration",
    "OAuthClient",
    "RegistryConfig",
    "add_gcp_registry",
    "config_from_data",
    "default_creds_config",
    "default_file_content",
    "load_config",
    "parse_bool",
    "parse_duration",
    "pick",
    "read_config_file",
    "read_file_indexes",
    "save_driver",
    "save_indexes",
    "user_config_dir",
]
