"""falcoctl's persistent flags: ``--config``, ``--log-format``, ``--log-level`` and the
deprecated ``--disable-styling`` are accepted before or after any sub-command.

The Falco Helm chart runs ``falcoctl artifact install --log-format=json``: :func:`hoist` moves
those flags (and ``--debug``) in front of the command path, where the root reads them. It walks
the argument list with the command tree, so the value of another option, an argument, or
anything after ``--`` is never taken for a global flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# flag -> whether it takes a value
GLOBAL_FLAGS = {"--config": True, "--log-format": True, "--log-level": True,
                "--disable-styling": False, "--debug": False}


def _split(token: str) -> tuple[str, str | None]:
    name, eq, value = token.partition("=")
    return name, (value if eq else None)


def _takes_value(command: Any, name: str) -> bool:
    """Whether ``name`` is an option of ``command`` that reads the next argument."""
    for param in getattr(command, "params", []):
        if name in getattr(param, "opts", []) or name in getattr(param, "secondary_opts", []):
            return not getattr(param, "is_flag", False) and not getattr(param, "count", False)
    return False


def hoist(command: Any, args: Sequence[str]) -> list[str]:
    """``args`` with the global flags found after a sub-command moved to the front."""
    front: list[str] = []
    rest: list[str] = []
    current = command
    tokens = list(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            rest.extend(tokens[i:])
            break
        name, inline = _split(token)
        if name in GLOBAL_FLAGS:
            front.append(token)
            if GLOBAL_FLAGS[name] and inline is None and i + 1 < len(tokens):
                front.append(tokens[i + 1])
                i += 1
        elif token.startswith("-") and token != "-":
            rest.append(token)
            if inline is None and _takes_value(current, name) and i + 1 < len(tokens):
                rest.append(tokens[i + 1])
                i += 1
        else:
            rest.append(token)
            sub = getattr(current, "commands", {}).get(token)
            if sub is not None:
                current = sub
        i += 1
    return front + rest


def scan(args: Sequence[str], flag: str) -> str | None:
    """The last value given to ``flag`` anywhere before ``--`` (to report early errors)."""
    found: str | None = None
    for i, token in enumerate(args):
        if token == "--":
            break
        name, inline = _split(token)
        if name == flag:
            found = inline if inline is not None else (args[i + 1] if i + 1 < len(args) else None)
    return found
