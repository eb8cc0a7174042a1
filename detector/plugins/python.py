"""Python plugins: entry points in the ``falcoctl_py.plugins`` group, same capabilities as native.

An entry point names a factory called with the init config string; the object it returns has
``name``, ``version``, optional ``required_api_version``, ``description``, ``contact``, and for
event sourcing ``id``, ``event_source``, ``open(params)``, ``next_batch(handle)`` returning
``(rc, [(ts_ns, payload_bytes)])`` (rc 0 ok, -1 timeout, 2 EOF) and ``close(handle)``; for field
extraction ``fields`` (the JSON shape of ``plugin_get_fields``) and
``extract(event, field, arg)`` where ``event`` has ``num``, ``ts``, ``data`` and ``source``
(optionally ``extract_many(event, [(field, arg), ...])`` returning the values in order, and
``extract_sources``, e.g. ``["syscall"]``, for extraction on other sources' events).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from detector.plugins.base import FieldValue, PluginEventRef, PluginInfo, parse_fields
from detector.plugins.native import check_api_version
from falcoctl_py.errors import DetectorError

ENTRY_POINT_GROUP = "falcoctl_py.plugins"


def available() -> list[str]:
    """Names of the Python plugins installed (entry points)."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


class PythonPlugin:
    """Adapts a Python plugin object to the runtime's plugin interface."""

    def __init__(self, name: str, entry_point: str, init_config: str = "") -> None:
        eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == entry_point]
        if not eps:
            raise DetectorError(
                f"plugin {name!r}: no Python plugin entry point {entry_point!r} in group "
                f"{ENTRY_POINT_GROUP}", hint="install the package that provides it; installed: "
                + (", ".join(available()) or "none"))
        try:
            factory = eps[0].load()
            obj = factory(init_config)
        except DetectorError:
            raise
        except Exception as err:
            raise DetectorError(f"plugin {name!r}: init failed: {err}",
                                hint="check plugins[].init_config in falco.yaml") from err
        required = str(getattr(obj, "required_api_version", "3.0.0"))
        check_api_version(required, name)
        self._obj = obj
        self.info = PluginInfo(
            name=str(obj.name), version=str(obj.version), required_api_version=required,
            description=str(getattr(obj, "description", "")),
            contact=str(getattr(obj, "contact", "")),
            id=int(getattr(obj, "id", 0)), event_source=str(getattr(obj, "event_source", "")),
            sourcing=all(hasattr(obj, a) for a in ("open", "next_batch", "close")),
            extraction=hasattr(obj, "fields") and hasattr(obj, "extract"),
            extract_sources=list(getattr(obj, "extract_sources", [])),
        )
        if self.info.extraction:
            self.info.fields = parse_fields(list(obj.fields))
        self._names = {f.name for f in self.info.fields}

    def open(self, params: str) -> object:
        try:
            return self._obj.open(params)
        except Exception as err:
            raise DetectorError(f"plugin {self.info.name!r}: open failed: {err}",
                                hint="check plugins[].open_params in falco.yaml") from err

    def next_batch(self, handle: object) -> tuple[int, list[tuple[int, bytes]]]:
        rc, batch = self._obj.next_batch(handle)
        return int(rc), [(int(ts), bytes(data)) for ts, data in batch]

    def close(self, handle: object) -> None:
        self._obj.close(handle)

    def extract(self, evt: PluginEventRef, field: str, arg: str | None) -> FieldValue:
        if field not in self._names:
            return None
        value: FieldValue = self._obj.extract(evt, field, arg)
        return value

    def extract_many(self, evt: PluginEventRef,
                     wanted: list[tuple[str, str | None]]) -> list[FieldValue]:
        """Several fields of one event: the object's ``extract_many`` if it has one."""
        many = getattr(self._obj, "extract_many", None)
        if many is not None:
            return list(many(evt, wanted))
        return [self.extract(evt, name, arg) for name, arg in wanted]

    def parse(self, evt: PluginEventRef) -> bool:
        """Python plugins have no parsing capability."""
        return False

    def destroy(self) -> None:
        destroy = getattr(self._obj, "destroy", None)
        if destroy is not None:
            destroy()
