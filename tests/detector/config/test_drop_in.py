"""falco.yaml as Falco users have it: Falco 0.42-0.44's default layout, the falcosecurity chart's
rendered file with config_files and ${VAR}, a config.d with each merge strategy, and values out
of range refused at load with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import load_config
from falcoctl_py.errors import ConfigError

# The keys and values of Falco 0.42-0.44's falco.yaml (comments left out), rules paths in tmp.
FALCO_DEFAULT = """\
config_files:
  - {root}/config.d
watch_config_files: true
rules_files:
  - {root}/falco_rules.yaml
  - {root}/falco_rules.local.yaml
  - {root}/rules.d
engine:
  kind: modern_ebpf
  kmod:
    buf_size_preset: 4
    drop_failed_exit: false
  modern_ebpf:
    cpus_for_each_buffer: 2
    buf_size_preset: 6
    drop_failed_exit: false
    disable_iterators: false
  replay:
    capture_file: ""
capture:
  enabled: false
  path_prefix: /tmp/falco
  mode: rules
  default_duration: 5000
load_plugins: []
plugins:
  - name: container
    library_path: libcontainer.so
    init_config:
      label_max_len: 100
      with_size: false
plugins_hostinfo: true
time_format_iso_8601: false
buffer_format_base64: false
priority: debug
json_output: false
json_include_output_property: true
json_include_message_property: false
json_include_output_fields_property: true
json_include_tags_property: true
buffered_outputs: false
rule_matching: first
outputs_queue:
  capacity: 0
append_output:
  - suggested_output: true
stdout_output:
  enabled: true
syslog_output:
  enabled: true
file_output:
  enabled: false
  keep_alive: false
  filename: ./events.txt
http_output:
  enabled: false
  url: ""
  user_agent: "falcosecurity/falco"
  insecure: false
  ca_cert: ""
  ca_bundle: ""
  ca_path: "/etc/ssl/certs"
  mtls: false
  client_cert: "/etc/ssl/certs/client.crt"
  client_key: "/etc/ssl/certs/client.key"
  echo: false
  compress_uploads: false
  keep_alive: false
  max_consecutive_timeouts: 5
program_output:
  enabled: false
  keep_alive: false
  program: "jq '{{text: .output}}' | curl -d @- -X POST https://hooks.slack.com/services/XXX"
webserver:
  enabled: true
  threadiness: 0
  listen_port: 8765
  listen_address: 0.0.0.0
  k8s_healthz_endpoint: /healthz
  prometheus_metrics_enabled: false
  ssl_enabled: false
  ssl_certificate: /etc/falco/falco.pem
log_stderr: true
log_syslog: true
log_level: info
libs_logger:
  enabled: true
  severity: info
output_timeout: 2000
syscall_event_timeouts:
  max_consecutives: 1000
syscall_event_drops:
  threshold: .1
  actions:
    - log
    - alert
  rate: .03333
  max_burst: 1
  simulate_drops: false
metrics:
  enabled: false
  interval: 1h
  output_rule: true
  output_file: ""
  rules_counters_enabled: true
  resource_utilization_enabled: true
  state_counters_enabled: true
  kernel_event_counters_enabled: true
  kernel_event_counters_per_cpu_enabled: false
  libbpf_stats_enabled: true
  plugins_metrics_enabled: true
  kernel_iter_event_counters_enabled: true
  jemalloc_stats_enabled: false
  convert_memory_to_mb: true
  include_empty_values: false
base_syscalls:
  custom_set: []
  repair: false
  all: false
falco_libs:
  thread_table_size: 262144
  thread_table_auto_purging_interval_s: 300
  thread_table_auto_purging_thread_timeout_s: 300
  snaplen: 80
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_falco_default_layout_loads_without_warnings(tmp_path: Path) -> None:
    f = _write(tmp_path / "falco.yaml", FALCO_DEFAULT.format(root=tmp_path))
    cfg = load_config(path=f)
    assert cfg.warnings == ()
    assert cfg.engine.kind == "modern_ebpf" and cfg.engine_kind == "ebpf"
    assert cfg.engine.buffers.buf_size_preset == 6  # the section of the configured kind
    assert cfg.metrics.enabled is False and cfg.webserver.prometheus_metrics_enabled is False
    assert cfg.rules_files[0] == f"{tmp_path}/falco_rules.yaml"
    assert [p.name for p in cfg.plugins] == ["container"] and cfg.load_plugins == ()
    assert cfg.append_output[0].suggested_output is True
    assert cfg.files == (f,) and cfg.folders == ()  # config.d does not exist: skipped


# The chart's rendered falco.yaml, from its documented values: config_files pointing at
# /etc/falco/config.d (here under tmp), the k8smeta plugin's nodeName from the downward API's
# FALCO_K8S_NODE_NAME, rules from the falcoctl init container, http output to falcosidekick.
CHART = """\
config_files:
  - {root}/etc/falco/config.d
rules_files:
  - {root}/etc/falco/falco_rules.yaml
  - {root}/etc/falco/rules.d
load_plugins: [k8smeta]
plugins:
  - name: k8smeta
    library_path: libk8smeta.so
    init_config:
      collectorHostname: falco-k8s-metacollector.falco.svc
      collectorPort: 45000
      nodeName: ${{FALCO_K8S_NODE_NAME}}
json_output: true
json_include_output_property: true
http_output:
  enabled: true
  url: http://falco-falcosidekick:2801
  user_agent: falcosecurity/falco
webserver:
  enabled: true
  listen_port: ${{FALCO_WEB_PORT}}
  k8s_healthz_endpoint: /healthz
  prometheus_metrics_enabled: false
engine:
  kind: ${{FALCO_DRIVER_KIND}}
  modern_ebpf:
    buf_size_preset: 4
    cpus_for_each_buffer: 2
priority: debug
"""


def test_chart_rendered_config_with_config_d_and_env(tmp_path: Path) -> None:
    f = _write(tmp_path / "etc/falco/falco.yaml", CHART.format(root=tmp_path))
    d = tmp_path / "etc/falco/config.d"
    _write(d / "falco.container_plugin.yaml", "load_plugins: [container]\n"
           "plugins:\n  - name: container\n    library_path: libcontainer.so\n")
    _write(d / "zz-local.yaml", "priority: warning\n")
    env = {"FALCO_K8S_NODE_NAME": "node-7", "FALCO_WEB_PORT": "8766",
           "FALCO_DRIVER_KIND": "kmod"}
    cfg = load_config(path=f, env=env)
    assert cfg.warnings == ()
    assert '"nodeName": "node-7"' in cfg.plugins[0].init_config
    assert cfg.webserver.listen_port == 8766  # a port from the environment is a number
    assert cfg.engine.kind == "kmod" and cfg.engine.runs_ebpf
    assert cfg.load_plugins == ("k8smeta", "container")  # append: lists grow
    assert [p.name for p in cfg.plugins] == ["k8smeta", "container"]
    assert cfg.priority == "warning"  # append: scalars are replaced
    assert cfg.folders == (d,)
    assert cfg.files == (f, d / "falco.container_plugin.yaml", d / "zz-local.yaml")


def test_config_d_merge_strategies_in_order(tmp_path: Path) -> None:
    d = tmp_path / "config.d"
    f = _write(tmp_path / "falco.yaml", f"""\
rules_files: [/a.yaml]
load_plugins: [a]
json_output: false
config_files:
  - path: {d}/append
  - path: {d}/override
    strategy: override
  - path: {d}/add
    strategy: add-only
  - {tmp_path}/missing.d
""")
    _write(d / "append/20.yaml", "rules_files: [/c.yaml]\n")
    _write(d / "append/10.yaml", "rules_files: [/b.yaml]\njson_output: true\n")
    _write(d / "override/x.yaml", "load_plugins: [o]\n")
    _write(d / "add/x.yaml", "json_output: false\npriority: error\nload_plugins: [z]\n")
    cfg = load_config(path=f)
    assert cfg.rules_files == ("/a.yaml", "/b.yaml", "/c.yaml")  # 10 before 20
    assert cfg.load_plugins == ("o",)
    assert cfg.json_output is True  # add-only keeps what is set
    assert cfg.priority == "error"  # ... and adds what is not
    assert [p.name for p in cfg.files] == ["falco.yaml", "10.yaml", "20.yaml", "x.yaml",
                                           "x.yaml"]
    # -o beats every file
    cfg = load_config(path=f, overrides=["json_output=false", "load_plugins=[cli]"])
    assert cfg.json_output is False and cfg.load_plugins == ("cli",)


def test_included_files_include_nothing_further(tmp_path: Path) -> None:
    inc = _write(tmp_path / "inc.yaml", f"config_files: [{tmp_path}/more.yaml]\n")
    f = _write(tmp_path / "falco.yaml", f"config_files: [{inc}]\n")
    with pytest.raises(ConfigError, match="included files include nothing further") as err:
        load_config(path=f)
    assert str(inc) in err.value.one_line()
    f.write_text(f"config_files: [{f}]\n")
    with pytest.raises(ConfigError, match="is the main configuration file"):
        load_config(path=f)


def test_env_expansion_and_its_escape(tmp_path: Path) -> None:
    f = _write(tmp_path / "falco.yaml", """\
file_output:
  filename: ${LOGDIR}/events-${HOST}.txt
program_output:
  program: echo $${HOME} ${UNSET}end
http_output:
  url: http://x/${UNCLOSED
syslog_output:
  address: ${TRICK}
""")
    cfg = load_config(path=f, env={"LOGDIR": "/var/log", "HOST": "n1", "TRICK": "${LOGDIR}"})
    assert cfg.file_output.filename == "/var/log/events-n1.txt"
    assert cfg.program_output.program == "echo ${HOME} end"  # escape kept; unset is empty
    assert cfg.http_output.url == "http://x/${UNCLOSED"
    assert cfg.syslog_output.address == "${LOGDIR}"  # a value is not expanded again


@pytest.mark.parametrize(("option", "key"), [
    ("webserver.listen_port=99999999", "webserver.listen_port"),
    ("engine.ebpf.buf_size_preset=100", "engine.ebpf.buf_size_preset"),
    ("engine.modern_ebpf.buf_size_preset=0", "engine.modern_ebpf.buf_size_preset"),
    ("outputs_queue.capacity=-5", "outputs_queue.capacity"),
    ("syscall_event_drops.actions=[explode]", "syscall_event_drops.actions[0]"),
    ("rules_files[999]=x", "rules_files"),
    ("output_timeout=" + "9" * 5000, "output_timeout"),
    ("metrics.enabled=maybe", "metrics.enabled"),
    ("engine.kind=gvisor", "engine.kind"),
    ("syscall_event_drops.threshold=.nan", "syscall_event_drops.threshold"),
    ("config_files=[{path: /x, strategy: merge}]", "config_files[0].strategy"),
])
def test_bad_values_are_one_line_errors_naming_the_key(option: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[option])
    line = err.value.one_line()
    assert key in line and "\n" not in line and len(line) < 400


@pytest.mark.parametrize("kind", ["modern_ebpf", "ebpf", "kmod", "auto"])
def test_kernel_engine_kinds_run_the_ebpf_engine(kind: str) -> None:
    cfg = load_config(overrides=[f"engine.kind={kind}"])
    assert cfg.engine_kind == "ebpf" and cfg.engine.runs_ebpf


def test_unknown_keys_warn_once_with_their_path(tmp_path: Path) -> None:
    f = _write(tmp_path / "falco.yaml", """\
webserver: {colour: red}
engine: {modern_ebpf: {turbo: true}}
append_output:
  - match: {rule: x, colour: red}
    extra_output: y
plugins:
  - {name: a, library_path: a.so, version: 2}
""")
    seen: list[str] = []
    cfg = load_config(path=f, warn=seen.append)
    for path in ("webserver.colour", "engine.modern_ebpf.turbo",
                 "append_output[0].match.colour", "plugins[0].version"):
        assert sum(path in w for w in seen) == 1, (path, seen)
    assert len(cfg.warnings) == len(seen) == 4


def test_r_and_c_are_relative_to_the_current_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "cfg/falco.yaml", "rules_files: [falco_rules.yaml]\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path=Path("cfg/falco.yaml"), rules_files=["mine.yaml"])
    assert cfg.path == tmp_path / "cfg/falco.yaml"
    assert cfg.rules_files == (str(tmp_path / "mine.yaml"),)


def test_relative_rules_files_in_falco_yaml_open_from_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Falco opens a relative rules_files entry as given: from the cwd, not the config's
    folder; so does a relative config_files entry."""
    _write(tmp_path / "cfg/falco.yaml", "rules_files: [rules/a.yaml, rules.d]\n"
           "config_files: [extra.yaml]\n")
    _write(tmp_path / "extra.yaml", "json_output: true\n")
    _write(tmp_path / "cfg/extra.yaml", "json_output: false\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path=Path("cfg/falco.yaml"))
    assert cfg.rules_files == (str(tmp_path / "rules/a.yaml"), str(tmp_path / "rules.d"))
    assert cfg.json_output is True  # ./extra.yaml, not cfg/extra.yaml
    assert tmp_path / "extra.yaml" in cfg.files
