"""The condition language's vocabulary: token regexes and operator, modifier and transformer words.

The regexes are libsinsp's (``filter/parser.cpp``) in possessive form: the same matches, without
quadratic backtracking.
"""

from __future__ import annotations

import re

RE_NOT_BLANK = re.compile(r"not[ \t\n\r\f\v]+")
RE_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*+")
RE_FIELD_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*+(?:\.[a-zA-Z][a-zA-Z0-9_]*+)++")
RE_FIELD_ARG_BARE = re.compile(r"[^\]\[\"' \t\n\r\f\v]+")
RE_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
RE_NUM = re.compile(r"[+\-]?[0-9]++\.?[0-9]*+(?:[eE][+\-][0-9]++)?")
RE_BARE = re.compile(r"[^()\"' \t\n\r\f\v=,]+")

UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
STR_OPS = ("==", "=", "!=", "glob ", "iglob ", "contains ", "icontains ", "bcontains ",
            "startswith ", "bstartswith ", "endswith ", "regex ")
LIST_OPS = ("intersects", "in", "pmatch")
MODIFIERS = ("oneof", "anyof", "allof")
TRANSFORMERS = ("tolower(", "toupper(", "b64(", "basename(", "len(", "join(", "concat(", "getopt(")
ALL_OPS = (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS)
SUPPORTED_OPS = ", ".join(f"'{o.strip()}'" for o in ALL_OPS)
SUPPORTED_TRANSFORMERS = ", ".join(f"'{t[:-1]}'" for t in ("val(", *TRANSFORMERS))
