"""Hand-written recursive-descent parser for Falco conditions (libsinsp's filter grammar).

The grammar, as libsinsp's ``filter/parser.h`` defines it::

    Expr        ::= OrExpr
    OrExpr      ::= AndExpr ('or' OrExprTail)*        OrExprTail  ::= Blank AndExpr | '(' Expr ')'
    AndExpr     ::= NotExpr ('and' AndExprTail)*      AndExprTail ::= Blank NotExpr | '(' Expr ')'
    NotExpr     ::= ('not' Blank)* NotExprTail        NotExprTail ::= 'not(' Expr ')' | Check
    Check       ::= Field Condition | FieldTransformer Condition | Identifier | '(' Expr ')'
    FieldTransformer     ::= TransformerType FieldTransformerTail
    FieldTransformerTail ::= TransformerArg (',' TransformerArg)* ')' ('[' FieldArg ']')?
    TransformerArg       ::= FieldTransformer | Field | QuotedStr | NumValue | TransformerList
    TransformerList      ::= '(' (ListArg (',' ListArg)*)? ')'
    ListArg              ::= Field | FieldTransformer | QuotedStr | NumValue
    TransformerOrVal     ::= FieldTransformer | 'val(' Field ')'
    Condition   ::= 'exists'
                  | NumOperator (NumValue | TransformerOrVal)
                  | StrOperator (StrValue | TransformerOrVal)
                  | StrOperator Modifier ListValue
                  | ListOperator (ListValue | TransformerOrVal)
    ListValue   ::= '(' (StrValue (',' StrValue)*)? ')' | Identifier
    Field       ::= FieldName ('[' FieldArg ']')?
    FieldArg    ::= QuotedStr | FieldArgBareStr
    NumOperator ::= '<=' | '<' | '>=' | '>'
    StrOperator ::= '==' | '=' | '!=' | ('glob' | 'iglob' | 'contains' | 'icontains' | 'bcontains'
                  | 'startswith' | 'bstartswith' | 'endswith' | 'regex') Blank
    Modifier    ::= ('oneof' | 'anyof' | 'allof') Blank
    ListOperator::= 'intersects' | 'in' | 'pmatch'
    TransformerType ::= 'tolower(' | 'toupper(' | 'b64(' | 'basename(' | 'len(' | 'join('
                      | 'concat(' | 'getopt('

    Identifier      [a-zA-Z]+[a-zA-Z0-9_]*
    FieldName       [a-zA-Z]+[a-zA-Z0-9_]*(\\.[a-zA-Z]+[a-zA-Z0-9_]*)+
    FieldArgBareStr [^][\"'[:space:]]+
    HexNumber       0[xX][0-9a-fA-F]+
    Number          [+\\-]?[0-9]+[\\.]?[0-9]*([eE][+\\-][0-9]+)?
    BareStr         [^()\"'[:space:]=,]+
    QuotedStr       "..." or '...' (a delimiter after a backslash does not end it), unescaped
    Blank           one or more of ' ' \\t \\b \\r \\n

Precedence: ``not`` > ``and`` > ``or``; ``and``/``or`` chains are n-ary, parentheses are kept.
The whole input must be consumed. Offsets count UTF-8 bytes, as libsinsp's do. Errors are
:class:`ConditionSyntaxError` with libsinsp's messages and positions; nesting deeper than
``max_depth`` guarded calls (Falco: 1000) is an error, never a crash. The operands (fields,
transformers, values, lists) are read by :mod:`detector.rules.lang.operands`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from detector.rules.errors import ConditionSyntaxError
from detector.rules.lang import tokens as tok
from detector.rules.lang.ast import (
    And,
    BinaryCheck,
    Expr,
    FieldRef,
    Identifier,
    ListNode,
    Not,
    Or,
    Pos,
    Transformer,
    UnaryCheck,
    ValueNode,
    as_string,
)
from detector.rules.lang.escaping import from_bytes_view, to_bytes_view
from detector.rules.lang.operands import OperandParser
from detector.rules.lang.scanner import Fail

__all__ = ["MAX_DEPTH", "ConditionSyntaxError", "canonical", "parse"]

MAX_DEPTH = 1000  # Falco's setting (the library default is 100)


class _Parser(OperandParser):
    """The boolean half: ``or``/``and``/``not``, checks and their operators (operands inherited)."""

    __slots__ = ()

    def parse_or(self) -> Expr:
        pos = self.pos()
        children = self._chain("or", self.parse_and)
        return Or(tuple(children), pos) if len(children) > 1 else children[0]

    def parse_and(self) -> Expr:
        pos = self.pos()
        children = self._chain("and", self.parse_not)
        return And(tuple(children), pos) if len(children) > 1 else children[0]

    def _chain(self, word: str, operand: Callable[[], Expr]) -> list[Expr]:
        """``operand (word operand)*``; a ``(`` right after ``word`` (no blank) opens a group."""
        self.guard()
        self.blank()
        children = [operand()]
        self.blank()
        while self.lit(word):
            if self.blank():
                children.append(operand())
            elif self.lit("("):
                children.append(self.parse_embedded())
            else:
                raise Fail(f"expected blank or '(' after '{word}'")
            self.blank()
        self.depth -= 1
        return children

    def parse_not(self) -> Expr:
        pos = self.pos()
        self.guard()
        negate = False
        self.blank()
        while self.rgx(tok.RE_NOT_BLANK):
            negate = not negate
        if self.lit("not("):
            negate = not negate
            child = self.parse_embedded()
        else:
            child = self.parse_check()
        self.depth -= 1
        return Not(child, pos) if negate else child

    def parse_embedded(self) -> Expr:
        self.guard()
        self.blank()
        child = self.parse_or()
        self.blank()
        if not self.lit(")"):
            raise Fail("expected a ')' token")
        self.depth -= 1
        return child

    def parse_check(self) -> Expr:
        pos = self.pos()
        self.guard()
        self.blank()
        result: Expr
        if self.lit("("):
            result = self.parse_embedded()
        elif self.rgx(tok.RE_FIELD_NAME):
            result = self.parse_condition(self.parse_field(self.last, pos), pos)
        elif self.transformer_type():
            self.blank()
            result = self.parse_condition(self.parse_transformer(self.last[:-1], pos), pos)
        elif self.rgx(tok.RE_IDENTIFIER):
            result = Identifier(self.last, pos)
        else:
            raise Fail("expected a '(' token, a field check, or an identifier")
        self.depth -= 1
        return result

    def parse_condition(self, left: FieldRef | Transformer, pos: Pos) -> Expr:
        self.guard()
        self.blank()
        result: Expr
        if self.op_list(tok.UNARY_OPS):
            result = UnaryCheck(left, self.last.strip(), pos)
        else:
            self.blank()
            right: ValueNode | ListNode | FieldRef | Transformer
            if self.op_list(tok.NUM_OPS):
                op = self.last
                right = self.parse_num_value()
            elif self.op_list(tok.STR_OPS):
                op = self.last.strip()
                modifier = self.try_modifier(word_op=op[0].isalpha())
                if modifier:
                    op = f"{op} {modifier}"
                    right = self.parse_list_value(allow_transformer=False)
                else:
                    right = self.parse_str_value(no_transformer=False)
            elif self.op_list(tok.LIST_OPS):
                op = self.last
                right = self.parse_list_value(allow_transformer=True)
            else:
                raise Fail(f"expected a valid check operator: one of {tok.SUPPORTED_OPS}")
            result = BinaryCheck(left, op, right, pos)
        self.depth -= 1
        return result

    def try_modifier(self, *, word_op: bool) -> str | None:
        """A string-operator modifier (libs 0.25+): ``oneof|anyof|allof`` + blank + a list."""
        save = self.pos()
        last = self.last
        if self.blank() or word_op:
            for mod in tok.MODIFIERS:
                if self.lit(mod) and self.blank():
                    if self.text.startswith("(", self.idx):
                        return mod
                    m = tok.RE_IDENTIFIER.match(self.text, self.idx)
                    if m is not None and m.group() not in ("and", "or"):
                        return mod
                    break
        self._set(save)
        self.last = last
        return None

    def parse(self) -> Expr:
        if self.n == 0:
            raise Fail("filter input string is empty")
        res = self.parse_or()
        if self.idx != self.n:
            last = from_bytes_view(self.last)
            if len(last) > 100:  # keep the message one readable line
                last = last[:100] + "..."
            raise Fail(f"unexpected token after '{last}', expecting 'or', 'and'")
        return res


def parse(condition: str, *, max_depth: int = MAX_DEPTH) -> Expr:
    """Parse a condition into its tree; raise :class:`ConditionSyntaxError` on bad input."""
    view = to_bytes_view(condition)
    p = _Parser(view, max_depth)
    # Each guarded level is one Python frame; keep Python's own limit above ours.
    need = max_depth + 200
    if sys.getrecursionlimit() < need:
        sys.setrecursionlimit(need)
    try:
        return p.parse()
    except Fail as exc:
        raise ConditionSyntaxError(str(exc), condition=condition, idx=p.idx, line=p.line,
                                   col=p.col) from None
    except RecursionError:
        raise ConditionSyntaxError(f"exceeded max depth limit of {max_depth}", condition=condition,
                                   idx=p.idx, line=p.line, col=p.col) from None


def canonical(condition: str) -> str:
    """The canonical form (libsinsp ``ast::as_string``) of a condition."""
    return as_string(parse(condition))
