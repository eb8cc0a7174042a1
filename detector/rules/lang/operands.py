"""The operand half of the condition parser: fields, transformers, values and lists.

The grammar of each is in :mod:`detector.rules.lang.parser`'s docstring (``Field``,
``FieldTransformer``, ``TransformerArg``, ``TransformerList``, ``TransformerOrVal``, ``ListValue``,
the values). Each guarded step counts one nesting level against ``max_depth``.
"""

from __future__ import annotations

from detector.rules.lang import tokens as tok
from detector.rules.lang.ast import (
    FieldRef,
    ListNode,
    Pos,
    Transformer,
    TransformerArg,
    TransformerList,
    ValueNode,
)
from detector.rules.lang.escaping import from_bytes_view
from detector.rules.lang.scanner import Fail, Scanner


class OperandParser(Scanner):
    """The steps that read a check's operands at the scanner's position."""

    __slots__ = ()

    def transformer_type(self) -> bool:
        return any(self.lit(t) for t in tok.TRANSFORMERS)

    def value(self, pos: Pos) -> ValueNode:
        return ValueNode(from_bytes_view(self.last), pos)

    def parse_field_arg(self) -> str:
        if not self.quoted() and not self.rgx(tok.RE_FIELD_ARG_BARE):
            raise Fail("expected a valid field argument: a quoted string or a bare string")
        arg = from_bytes_view(self.last)
        if not self.lit("]"):
            raise Fail("expected a ']' token")
        return arg

    def parse_field(self, name: str, pos: Pos) -> FieldRef:
        self.guard()
        arg = self.parse_field_arg() if self.lit("[") else None
        self.depth -= 1
        return FieldRef(name, arg, pos)

    def parse_transformer(self, name: str, pos: Pos) -> Transformer:
        self.guard()
        self.blank()
        args: list[TransformerArg] = []
        while True:
            args.append(self.parse_transformer_arg(self.pos()))
            self.blank()
            if not self.lit(","):
                break
        self.blank()
        if not self.lit(")"):
            raise Fail("expected a ')' token closing the transformer")
        arg = self.parse_field_arg() if self.lit("[") else None
        self.depth -= 1
        return Transformer(name, tuple(args), arg, pos)

    def parse_transformer_arg(self, pos: Pos) -> TransformerArg:
        self.guard()
        self.blank()
        result: TransformerArg
        if self.rgx(tok.RE_HEX) or self.rgx(tok.RE_NUM) or self.quoted():
            result = self.value(pos)
        elif self.lit("("):
            result = self.parse_transformer_list(pos)
        elif self.transformer_type():
            result = self.parse_transformer(self.last[:-1], pos)
        elif self.rgx(tok.RE_FIELD_NAME):
            result = self.parse_field(self.last, pos)
        else:
            raise Fail("expected field transformer argument: "
                        "field, transformer, quoted string, number, or transformer list")
        self.depth -= 1
        return result

    def parse_transformer_list(self, pos: Pos) -> TransformerList:
        self.blank()
        children: list[TransformerArg] = []
        if self.lit(")"):
            return TransformerList((), pos)
        children.append(self.parse_list_arg(pos))
        self.blank()
        while self.lit(","):
            self.blank()
            children.append(self.parse_list_arg(pos))
            self.blank()
        if not self.lit(")"):
            raise Fail("expected ')'")
        return TransformerList(tuple(children), pos)

    def parse_list_arg(self, pos: Pos) -> TransformerArg:
        if self.rgx(tok.RE_FIELD_NAME):
            return self.parse_field(self.last, pos)
        if self.transformer_type():
            self.blank()
            return self.parse_transformer(self.last[:-1], pos)
        if self.quoted() or self.rgx(tok.RE_HEX) or self.rgx(tok.RE_NUM):
            return self.value(pos)
        raise Fail("expected transformer list argument: "
                    "field, transformer, quoted string, or number")

    def parse_num_value(self) -> ValueNode | Transformer:
        self.guard()
        self.blank()
        pos = self.pos()
        res = self.try_transformer_or_val()
        if res is None:
            if not (self.rgx(tok.RE_HEX) or self.rgx(tok.RE_NUM)):
                raise Fail("expected a number value or a field with a valid transformer: "
                            + tok.SUPPORTED_TRANSFORMERS)
            self.depth -= 1
            return self.value(pos)
        self.depth -= 1
        return res

    def parse_str_value(self, *, no_transformer: bool) -> ValueNode | Transformer:
        self.guard()
        self.blank()
        pos = self.pos()
        if not no_transformer:
            res = self.try_transformer_or_val()
            if res is not None:
                self.depth -= 1
                return res
        if self.quoted() or self.rgx(tok.RE_BARE):
            self.depth -= 1
            return self.value(pos)
        if no_transformer:
            raise Fail("expected a string value")
        raise Fail("expected a string value or a field with a valid transformer: "
                    + tok.SUPPORTED_TRANSFORMERS)

    def _list_item(self) -> str:
        node = self.parse_str_value(no_transformer=True)
        assert isinstance(node, ValueNode)
        return node.value

    def parse_list_value(self, *, allow_transformer: bool) -> ValueNode | ListNode | Transformer:
        self.guard()
        self.blank()
        pos = self.pos()
        if self.lit("("):
            items: list[str] = []
            self.blank()
            depth = self.depth
            try:
                first: str | None = self._list_item()
            except Fail:
                self.depth = depth
                first = None
            if first is not None:
                items.append(first)
                self.blank()
                while self.lit(","):
                    items.append(self._list_item())
                    self.blank()
            if not self.lit(")"):
                raise Fail("expected a ')' token")
            self.depth -= 1
            return ListNode(tuple(items), pos)
        if allow_transformer:
            res = self.try_transformer_or_val()
            if res is not None:
                self.depth -= 1
                return res
        if self.rgx(tok.RE_IDENTIFIER):
            self.depth -= 1
            return self.value(pos)
        raise Fail("expected a list, an identifier, or a field with a valid transformer: "
                    + tok.SUPPORTED_TRANSFORMERS)

    def try_transformer_or_val(self) -> Transformer | None:
        self.guard()
        self.blank()
        pos = self.pos()
        res: Transformer | None = None
        if self.lit("val("):
            self.blank()
            field_pos = self.pos()
            if not self.rgx(tok.RE_FIELD_NAME):
                raise Fail("expected a field within 'val' transformer")
            child = self.parse_field(self.last, field_pos)
            self.blank()
            if not self.lit(")"):
                raise Fail("expected a ')' token closing the transformer")
            arg = self.parse_field_arg() if self.lit("[") else None
            res = Transformer("val", (child,), arg, pos)
        elif self.transformer_type():
            self.blank()
            res = self.parse_transformer(self.last[:-1], pos)
        self.depth -= 1
        return res
