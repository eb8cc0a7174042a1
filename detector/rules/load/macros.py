"""Macro substitution with Falco's visibility rules, bounded in size, depth and nesting.

A macro's tree is resolved once and shared by every use, so memory stays linear in the file;
but a condition's *expanded* size doubles with each macro that uses the previous one twice
(40 such macros fit in 1 KB). Everything after substitution (canonical strings, event-type
inference, code generation) walks the expanded tree, so each macro's and rule's expanded size
and depth are measured on the shared tree (linear time) and refused past the limits below with
an error naming the macro, before anything expands it.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.rules.lang.ast import And, BinaryCheck, Expr, Identifier, ListNode, Not, Or
from detector.rules.load.collector import MacroDef


@dataclass(frozen=True, slots=True)
class ExpansionLimits:
    """How far list and macro substitution may go, per condition and per load."""

    # Per expanded condition: 64x the largest of the upstream rules (783 nodes, depth 7).
    max_nodes: int = 50_000
    # Tree levels: later steps (canonical strings, inference) walk the tree recursively.
    max_depth: int = 200
    # Macros inside macros inside ... (the upstream rules nest a few levels).
    max_nesting: int = 100
    # All the rules and macros of one load together.
    max_total_nodes: int = 1_000_000
    # A list with the lists it names expanded (upstream: 102 items at most).
    max_list_items: int = 50_000
    # A condition's text with its lists substituted (upstream: 5,834 characters at most).
    max_condition_chars: int = 256 * 1024


EXPANSION_LIMITS = ExpansionLimits()
_HINT = ("a macro that uses another macro several times doubles in size at each level; "
         "write the shared part once or split the rule")
_DEEP_HINT = "use fewer levels of macros within macros (or of nested parentheses)"


class MacroError(Exception):
    """A macro reference that cannot be resolved: undefined, a loop, or over a limit."""

    hint = ""


class Undefined(MacroError):
    def __init__(self, name: str) -> None:
        short = name if len(name) <= 100 else name[:100] + "..."
        super().__init__(f"Undefined macro '{short}' used in filter.")


class Loop(MacroError):
    def __init__(self, name: str) -> None:
        super().__init__(f"reference loop in macro '{name}'")


class TooLarge(MacroError):
    """An expanded condition over :class:`ExpansionLimits`."""

    def __init__(self, message: str, hint: str = _HINT) -> None:
        super().__init__(message)
        self.hint = hint


class MacroResolver:
    """Replaces macro identifiers with macro trees, with Falco's visibility rules."""

    def __init__(self, macros: dict[str, MacroDef], trees: dict[str, Expr],
                 limits: ExpansionLimits = EXPANSION_LIMITS) -> None:
        self.macros = macros
        self.trees = trees
        self.limits = limits
        self.resolved: dict[str, Expr] = {}
        self.failed: dict[str, MacroError] = {}
        self.total = 0
        # id -> (node, expanded size, depth); the node is kept so that its id stays its own.
        self._measured: dict[int, tuple[Expr, int, int]] = {}

    def resolve(self, node: Expr, visibility: int | None, stack: tuple[str, ...] = ()) -> Expr:
        """``node`` with every macro identifier visible at ``visibility`` substituted."""
        done: dict[int, Expr] = {}
        todo: list[tuple[Expr, bool]] = [(node, False)]
        while todo:  # post-order with an explicit stack: conditions may be 1000 levels deep
            n, ready = todo.pop()
            if isinstance(n, Identifier):
                done[id(n)] = self._macro(n.name, visibility, stack)
                continue
            kids = n.children if isinstance(n, (And, Or)) else \
                (n.child,) if isinstance(n, Not) else ()
            if not kids:
                done[id(n)] = n
            elif not ready:
                todo.append((n, True))
                todo.extend((k, False) for k in reversed(kids))
            else:
                new = tuple(done[id(k)] for k in kids)
                if all(a is b for a, b in zip(new, kids, strict=True)):
                    done[id(n)] = n
                elif isinstance(n, Not):
                    done[id(n)] = Not(new[0], n.pos)
                elif isinstance(n, And):
                    done[id(n)] = And(new, n.pos)
                else:
                    assert isinstance(n, Or)
                    done[id(n)] = Or(new, n.pos)
        return done[id(node)]

    def resolve_checked(self, name: str, kind: str, node: Expr, visibility: int | None,
                        stack: tuple[str, ...] = ()) -> Expr:
        """:meth:`resolve`, then the expanded tree measured and counted against the limits."""
        tree = self.resolve(node, visibility, stack)
        self.check(name, kind, tree)
        return tree

    def check(self, name: str, kind: str, tree: Expr) -> None:
        """Refuse ``tree`` (the expansion of ``kind`` ``name``) when it is over a limit."""
        size, depth = self.measure(tree)
        lim = self.limits
        if size > lim.max_nodes:
            raise TooLarge(f"{kind.capitalize()} '{name}' expands to {size} condition nodes, "
                           f"over the limit of {lim.max_nodes}")
        if depth > lim.max_depth:
            raise TooLarge(f"{kind.capitalize()} '{name}' expands to a condition {depth} levels "
                           f"deep, over the limit of {lim.max_depth}", _DEEP_HINT)
        self.total += size
        if self.total > lim.max_total_nodes:
            raise TooLarge(f"{kind.capitalize()} '{name}' brings the expanded conditions of the "
                           f"rules to {self.total} nodes, over the limit of "
                           f"{lim.max_total_nodes}")

    def measure(self, tree: Expr) -> tuple[int, int]:
        """Expanded node count (list items included) and depth of a shared tree, in linear time."""
        memo = self._measured
        todo: list[tuple[Expr, bool]] = [(tree, False)]
        while todo:
            n, ready = todo.pop()
            if id(n) in memo:
                continue
            kids = n.children if isinstance(n, (And, Or)) else \
                (n.child,) if isinstance(n, Not) else ()
            if kids and not ready:
                todo.append((n, True))
                todo.extend((k, False) for k in kids if id(k) not in memo)
                continue
            size, depth = 1, 1
            if isinstance(n, BinaryCheck) and isinstance(n.right, ListNode):
                size += len(n.right.items)
            for k in kids:
                _, ks, kd = memo[id(k)]
                size, depth = size + ks, max(depth, kd + 1)
            memo[id(n)] = (n, size, depth)
        return memo[id(tree)][1:]

    def _macro(self, name: str, visibility: int | None, stack: tuple[str, ...]) -> Expr:
        m = self.macros.get(name)
        if m is None or name not in self.trees or (visibility is not None
                                                   and m.index >= visibility):
            raise Undefined(name)
        if name in stack:
            raise Loop(name)
        m.used = True
        done = self.resolved.get(name)
        if done is not None:
            return done
        failed = self.failed.get(name)
        if failed is not None:
            raise failed
        if len(stack) >= self.limits.max_nesting:
            raise TooLarge(f"Macro '{name}' is used {len(stack)} macros deep, over the limit "
                           f"of {self.limits.max_nesting}", _DEEP_HINT)
        try:
            done = self.resolve(self.trees[name], m.visibility, (*stack, name))
            size, depth = self.measure(done)
            if size > self.limits.max_nodes or depth > self.limits.max_depth:
                self.check(name, "macro", done)
        except (Undefined, TooLarge) as exc:  # a loop depends on the path taken: not kept
            self.failed[name] = exc
            raise
        self.resolved[name] = done
        return done
