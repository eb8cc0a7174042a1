"""falco.yaml as frozen dataclasses: every key the detector reads, with its default, here only.

A field's metadata says how its value is checked when the file is read
(:mod:`detector.config.build`): ``range`` (inclusive bounds of a number), ``choices`` (the
values a string, or each item of a list, may take), ``key`` (the YAML key when it is not the
field's name), ``parse`` (a function for values with a shape of their own). A field typed
``Any`` is a Falco key the detector accepts and does not act on: it is kept, never checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.config.sections import (
    AppendOutput,
    ConfigInclude,
    PluginConfig,
    RuleSelector,
    parse_append_output,
    parse_config_files,
    parse_plugins,
    parse_selectors,
)

PRIORITIES = (
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
)
# Falco's engine kinds the eBPF engine stands in for, and the detector's own.
EBPF_STAND_INS = ("modern_ebpf", "ebpf", "kmod", "auto")
EBPF_HOOKS = ("auto", "syscall_tp", "tp_btf", "raw_tp")  # detector.sources.ebpf.HOOKS
ENGINE_KINDS = (*EBPF_STAND_INS, "replay", "nodriver")
DROP_ACTIONS = ("ignore", "log", "alert", "exit")
_PORT = (0, 65535)
_U32 = (0, 2**32 - 1)


def _range(lo: float, hi: float) -> dict[str, Any]:
    return {"range": (lo, hi)}


@dataclass(frozen=True, slots=True)
class StdoutOutput:
    """``stdout_output``."""

    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SyslogOutput:
    """``syslog_output``; ``address`` and ``facility`` are the detector's own additions."""

    enabled: bool = False
    address: str = "/dev/log"
    facility: int = field(default=1, metadata=_range(0, 23))


@dataclass(frozen=True, slots=True)
class FileOutput:
    """``file_output``."""

    enabled: bool = False
    keep_alive: bool = False
    filename: str = "./events.txt"


@dataclass(frozen=True, slots=True)
class HttpOutput:
    """``http_output``; ``retries`` and ``timeout`` are the detector's own additions."""

    enabled: bool = False
    url: str = ""
    user_agent: str = "falcosecurity/falco"
    insecure: bool = False
    ca_cert: str = ""
    ca_bundle: str = ""
    ca_path: str = "/etc/ssl/certs"
    mtls: bool = False
    client_cert: str = ""
    client_key: str = ""
    echo: bool = False
    compress_uploads: bool = False
    keep_alive: bool = False
    max_consecutive_timeouts: int = field(default=5, metadata=_range(*_U32))
    retries: int = field(default=3, metadata=_range(0, 100))
    timeout: float = field(default=5.0, metadata=_range(0.001, 3600))


@dataclass(frozen=True, slots=True)
class ProgramOutput:
    """``program_output``."""

    enabled: bool = False
    keep_alive: bool = False
    program: str = ""


@dataclass(frozen=True, slots=True)
class OutputsQueue:
    """``outputs_queue``: 0 means the detector's default bound."""

    capacity: int = field(default=0, metadata=_range(0, 2**63 - 1))


@dataclass(frozen=True, slots=True)
class Webserver:
    """``webserver``."""

    enabled: bool = True
    threadiness: int = field(default=0, metadata=_range(*_U32))
    listen_port: int = field(default=8765, metadata=_range(*_PORT))
    listen_address: str = "0.0.0.0"
    k8s_healthz_endpoint: str = "/healthz"
    prometheus_metrics_enabled: bool = True
    ssl_enabled: bool = False
    ssl_certificate: str = "/etc/falco/falco.pem"


@dataclass(frozen=True, slots=True)
class EngineBuffers:
    """``engine.<kind>``: the ring buffer settings of a kernel engine."""

    buf_size_preset: int = field(default=4, metadata=_range(1, 10))
    cpus_for_each_buffer: int = field(default=2, metadata=_range(0, 65535))
    drop_failed_exit: bool = False
    disable_iterators: bool = False
    # how syscall exits are hooked (falcoctl-py's own key; see detector/bpf/hooks.py)
    hook: str = field(default="auto", metadata={"choices": EBPF_HOOKS})
    # kernel filters derived from the rules (falcoctl-py's own key; see detector/kfilter)
    kernel_filters: bool = True


@dataclass(frozen=True, slots=True)
class Replay:
    """``engine.replay``."""

    capture_file: str = ""


@dataclass(frozen=True, slots=True)
class Engine:
    """``engine``: which source feeds syscalls."""

    kind: str = field(default="ebpf", metadata={"choices": ENGINE_KINDS})
    ebpf: EngineBuffers = EngineBuffers()
    modern_ebpf: EngineBuffers = EngineBuffers()
    kmod: EngineBuffers = EngineBuffers()
    replay: Replay = Replay()
    gvisor: Any = None

    @property
    def runs_ebpf(self) -> bool:
        return self.kind in EBPF_STAND_INS

    @property
    def buffers(self) -> EngineBuffers:
        """The buffer settings of the configured kind (``engine.ebpf`` for the detector's own)."""
        return {"modern_ebpf": self.modern_ebpf, "kmod": self.kmod}.get(self.kind, self.ebpf)


@dataclass(frozen=True, slots=True)
class BaseSyscalls:
    """``base_syscalls``."""

    custom_set: tuple[str, ...] = ()
    repair: bool = False
    all: bool = False


@dataclass(frozen=True, slots=True)
class SyscallEventDrops:
    """``syscall_event_drops``."""

    threshold: float = field(default=0.1, metadata=_range(0, 100))
    actions: tuple[str, ...] = field(default=("log", "alert"),
                                     metadata={"choices": DROP_ACTIONS})
    rate: float = field(default=0.03333, metadata=_range(0, 1e9))
    max_burst: int = field(default=1, metadata=_range(0, 2**31 - 1))
    simulate_drops: bool = False


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``metrics`` (the detector reads ``enabled``, ``interval`` and ``output_rule``)."""

    enabled: bool = True
    interval: str = "1h"
    output_rule: bool = False
    output_file: str = ""
    rules_counters_enabled: bool = True
    resource_utilization_enabled: bool = True
    state_counters_enabled: bool = True
    kernel_event_counters_enabled: bool = True
    kernel_event_counters_per_cpu_enabled: bool = False
    libbpf_stats_enabled: bool = True
    plugins_metrics_enabled: bool = True
    kernel_iter_event_counters_enabled: bool = True
    jemalloc_stats_enabled: bool = False
    convert_memory_to_mb: bool = True
    include_empty_values: bool = False


@dataclass(frozen=True, slots=True)
class ArtifactSection:
    """``artifact``: the embedded follower's settings (falcoctl.yaml's ``artifact.follow``)."""

    follow: Mapping[str, Any] | None = None


def _default_append() -> tuple[AppendOutput, ...]:
    return (AppendOutput(suggested_output=True),)


@dataclass(frozen=True, slots=True)
class FalcoConfig:
    """The configuration the detector runs with: falco.yaml, its config_files and ``-o``."""

    rules_files: tuple[str, ...] = ()
    rules_file: tuple[str, ...] = ()  # the deprecated spelling; read when rules_files is absent
    config_files: tuple[ConfigInclude, ...] = field(default=(),
                                                    metadata={"parse": parse_config_files})
    watch_config_files: bool = True
    rules: tuple[RuleSelector, ...] = field(default=(), metadata={"parse": parse_selectors})
    load_plugins: tuple[str, ...] = ()
    plugins: tuple[PluginConfig, ...] = field(default=(), metadata={"parse": parse_plugins})
    plugins_hostinfo: bool = True
    priority: str = field(default="debug", metadata={"choices": PRIORITIES})
    rule_matching: str = field(default="first", metadata={"choices": ("first", "all")})
    json_output: bool = False
    json_include_output_property: bool = True
    json_include_message_property: bool = False
    json_include_output_fields_property: bool = True
    json_include_tags_property: bool = True
    time_format_iso_8601: bool = False
    buffer_format_base64: bool = False
    buffered_outputs: bool = False
    outputs_queue: OutputsQueue = OutputsQueue()
    output_timeout: int = field(default=2000, metadata=_range(*_U32))
    append_output: tuple[AppendOutput, ...] = field(default_factory=_default_append,
                                                    metadata={"parse": parse_append_output})
    static_fields: Mapping[str, str] = field(default_factory=dict)
    stdout_output: StdoutOutput = StdoutOutput()
    syslog_output: SyslogOutput = SyslogOutput()
    file_output: FileOutput = FileOutput()
    http_output: HttpOutput = HttpOutput()
    program_output: ProgramOutput = ProgramOutput()
    webserver: Webserver = Webserver()
    engine: Engine = Engine()
    base_syscalls: BaseSyscalls = BaseSyscalls()
    syscall_event_drops: SyscallEventDrops = SyscallEventDrops()
    metrics: MetricsConfig = MetricsConfig()
    artifact: ArtifactSection = ArtifactSection()
    log_stderr: bool = True
    log_syslog: bool = False
    log_level: str = "info"
    # Falco keys the detector accepts and does not act on.
    grpc: Any = None
    grpc_output: Any = None
    syscall_event_timeouts: Any = None
    falco_libs: Any = None
    capture: Any = None
    libs_logger: Any = None
    # Where it came from (not YAML keys).
    path: Path | None = field(default=None, metadata={"source": True})
    files: tuple[Path, ...] = field(default=(), metadata={"source": True})
    folders: tuple[Path, ...] = field(default=(), metadata={"source": True})
    warnings: tuple[str, ...] = field(default=(), metadata={"source": True})

    @property
    def rule_selectors(self) -> tuple[RuleSelector, ...]:
        return self.rules

    @property
    def engine_kind(self) -> str:
        """``ebpf`` for every kernel engine kind, else ``replay`` or ``nodriver``."""
        return "ebpf" if self.engine.runs_ebpf else self.engine.kind

    @property
    def base_dir(self) -> Path | None:
        """The folder relative rules paths of this config resolve in (None: the data folder).

        A loaded file's ``rules_files`` are already absolute (from the current directory, as
        Falco opens them), so this matters for the embedded default only."""
        return self.path.parent if self.path is not None else None
