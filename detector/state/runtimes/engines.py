"""Which runtime sockets to ask, named as Falco's ``container`` plugin names them.

The plugin's ``init_config`` in falco.yaml::

    plugins:
      - name: container
        library_path: libcontainer.so
        init_config:
          engines:
            docker:     {enabled: true, sockets: [/var/run/docker.sock]}
            podman:     {enabled: true, sockets: [/run/podman/podman.sock]}
            containerd: {enabled: true, sockets: [/run/host-containerd/containerd.sock]}
            cri:        {enabled: true, sockets: [/run/containerd/containerd.sock,
                                              /run/crio/crio.sock]}

:func:`engines_from_init_config` turns that mapping (or ``None``: the defaults) into an
:class:`Engines`. Keys the detector does not use (``lxc``, ``libvirt_lxc``, ``bpm``,
``label_max_len``, ``hooks``, ``with_size``) are accepted and ignored. ``podman.storage``
(this project's own key) is the podman storage root read when no podman socket answers.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass, field

from detector.errors import DetectorError

ENGINE_NAMES = ("docker", "podman", "containerd", "cri")
DEFAULT_SOCKETS: dict[str, tuple[str, ...]] = {
    "docker": ("/var/run/docker.sock",),
    "podman": ("/run/podman/podman.sock",),
    # The plugin's default is Bottlerocket's host socket; a plain host runs `ctr` containers on
    # containerd's main socket, so it is asked too.
    "containerd": ("/run/host-containerd/containerd.sock", "/run/containerd/containerd.sock"),
    "cri": ("/run/containerd/containerd.sock", "/run/crio/crio.sock",
            "/run/k3s/containerd/containerd.sock", "/run/host-containerd/containerd.sock"),
}  # fmt: skip
DEFAULT_PODMAN_STORAGE = "/var/lib/containers/storage"


@dataclass(frozen=True)
class Engines:
    """Enabled engines and their sockets (unix paths), in the order they are asked."""

    docker: tuple[str, ...] = DEFAULT_SOCKETS["docker"]
    podman: tuple[str, ...] = DEFAULT_SOCKETS["podman"]
    containerd: tuple[str, ...] = DEFAULT_SOCKETS["containerd"]
    cri: tuple[str, ...] = DEFAULT_SOCKETS["cri"]
    podman_storage: str | None = DEFAULT_PODMAN_STORAGE
    timeout: float = 2.0  # seconds per runtime call (on the metadata thread, never the loop)
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def none(cls) -> Engines:
        """No runtime asked at all (replay, tests)."""
        return cls(docker=(), podman=(), containerd=(), cri=(), podman_storage=None)


def _rootless_podman() -> tuple[str, ...]:
    return tuple(sorted(glob.glob("/run/user/*/podman/podman.sock")))


def engines_from_init_config(init_config: Mapping[str, object] | None) -> Engines:
    """The engines a container plugin ``init_config`` names; raises DetectorError on bad input."""
    if init_config is None:
        return Engines(podman=DEFAULT_SOCKETS["podman"] + _rootless_podman())
    if not isinstance(init_config, Mapping):
        raise _bad("init_config", "a mapping")
    engines = init_config.get("engines") or {}
    if not isinstance(engines, Mapping):
        raise _bad("init_config.engines", "a mapping of engine name to {enabled, sockets}")
    values: dict[str, tuple[str, ...]] = {}
    storage: str | None = DEFAULT_PODMAN_STORAGE
    for name in ENGINE_NAMES:
        spec = engines.get(name)
        if spec is None:
            values[name] = DEFAULT_SOCKETS[name]
            continue
        if not isinstance(spec, Mapping):
            raise _bad(f"init_config.engines.{name}", "a mapping with enabled and sockets")
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _bad(f"init_config.engines.{name}.enabled", "true or false")
        sockets = spec.get("sockets", list(DEFAULT_SOCKETS[name]))
        if not isinstance(sockets, list) or not all(isinstance(s, str) for s in sockets):
            raise _bad(f"init_config.engines.{name}.sockets", "a list of unix socket paths")
        values[name] = tuple(s.removeprefix("unix://") for s in sockets) if enabled else ()
        if name == "podman":
            raw = spec.get("storage", DEFAULT_PODMAN_STORAGE if enabled else None)
            if raw is not None and not isinstance(raw, str):
                raise _bad("init_config.engines.podman.storage", "a directory path")
            storage = raw or None
    return Engines(docker=values["docker"], podman=values["podman"],
                   containerd=values["containerd"], cri=values["cri"], podman_storage=storage)


def _bad(key: str, want: str) -> DetectorError:
    return DetectorError(f"container plugin {key} must be {want}",
                         hint="see README, 'Containers': engines.<name>.sockets")
