"""Values of a rules file's items decoded as yaml-cpp decodes them (Falco's loader uses it):
scalars, booleans (``yes``/``on``/...), unsigned integers and sequences of strings, each failing
with Falco's ``LOAD_ERR_YAML_VALIDATE`` messages at the item's location."""

from __future__ import annotations

from detector.rules.load.result import LoadFailure, Location
from detector.rules.load.yamlload import YList, YMap, YStr
from falcoctl_py.bounded import is_digits

Ctx = tuple[Location, ...]
YV = "LOAD_ERR_YAML_VALIDATE"

_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"}
_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"}


class Decoder:
    """The decoding steps the rules file reader is built on."""

    __slots__ = ()

    @staticmethod
    def present(item: YMap, key: str, ctx: Ctx, *, optional: bool) -> object | None:
        """The value under ``key``; None (when optional) or a failure if missing or null."""
        if key not in item:
            if optional:
                return None
            raise LoadFailure(YV, f"Item has no mapping for key '{key}'", ctx)
        value = item[key]
        if isinstance(value, YStr) and value.is_null:
            if optional:
                return None
            raise LoadFailure(YV, f"Mapping for key '{key}' is empty", ctx)
        return value

    def scalar(self, item: YMap, key: str, ctx: Ctx, *, optional: bool = False,
               nonempty: bool = False) -> YStr | None:
        value = self.present(item, key, ctx, optional=optional)
        if value is None:
            return None
        if not isinstance(value, YStr):
            raise LoadFailure(YV, "Value is not a scalar value", ctx)
        if nonempty and not value:
            raise LoadFailure(YV, "Value must be non-empty", ctx)
        return value

    def string(self, item: YMap, key: str, ctx: Ctx) -> str:
        value = self.scalar(item, key, ctx)
        assert value is not None
        return str(value)

    def boolean(self, item: YMap, key: str, ctx: Ctx, *, optional: bool = True) -> bool | None:
        value = self.scalar(item, key, ctx, optional=optional)
        if value is None:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise LoadFailure(YV, "Can't decode YAML scalar value", ctx)

    def uint(self, item: YMap, key: str, ctx: Ctx) -> int | None:
        value = self.scalar(item, key, ctx, optional=True)
        if value is None:
            return None
        if not is_digits(value.strip()):
            raise LoadFailure(YV, "Can't decode YAML scalar value", ctx)
        return int(value)

    def strings(self, item: YMap, key: str, ctx: Ctx, *,
                optional: bool = False) -> list[str] | None:
        value = self.present(item, key, ctx, optional=optional)
        if value is None:
            return None
        if not isinstance(value, YList):
            raise LoadFailure(YV, "Value is not a sequence", ctx)
        out = []
        for v in value:
            if not isinstance(v, YStr):
                raise LoadFailure(YV, "sequence value is not scalar", ctx)
            out.append(str(v))
        return out

    # -- documents and items ------------------------------------------------------------------
