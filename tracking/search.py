"""MLflow's search syntax, parsed into plain terms (no Django here): filter strings and order-by
clauses for runs and experiments.

A filter is clauses joined by AND (MLflow has no OR):
    metrics.accuracy > 0.9 and params.model = 'tree' and tags.`team name` LIKE '%ops%'
    attributes.status IN ('FINISHED', 'FAILED') and attributes.run_name ILIKE 'baseline%'
An identifier is `<entity>.<key>` (entity: metric(s), param(s), tag(s), attribute(s), run) or an
attribute alone; a key with spaces or symbols is quoted with backticks or double quotes. Values are
numbers, 'strings' or "strings", or a ('tuple', 'of', 'strings') for IN / NOT IN.
"""

import re
from dataclasses import dataclass

from .errors import invalid

METRIC, PARAM, TAG, ATTRIBUTE = "metric", "param", "tag", "attribute"
_ENTITIES = {
    "metric": METRIC,
    "metrics": METRIC,
    "param": PARAM,
    "params": PARAM,
    "parameter": PARAM,
    "parameters": PARAM,
    "tag": TAG,
    "tags": TAG,
    "attribute": ATTRIBUTE,
    "attributes": ATTRIBUTE,
    "attr": ATTRIBUTE,
    "run": ATTRIBUTE,
}
RUN_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "run_name",
    "status": "status",
    "start_time": "start_time",
    "created": "start_time",
    "Created": "start_time",
    "end_time": "end_time",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
}
NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
COMPARISONS = {"=", "!=", "<", ">", "<=", ">="}
STRING_OPERATORS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
FILTER_MAX = 10_000
CLAUSES_MAX = 50

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
      | (?P<bq>`[^`]*`)
      | (?P<num>(?>[-+]?(?:\d++\.?\d*+(?:[eE][-+]?\d++)?|\.\d++(?:[eE][-+]?\d++)?)))(?![\w.])
      | (?P<word>[A-Za-z_][\w\-]*)
      | (?P<dot>\.)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    entity: str  # METRIC | PARAM | TAG | ATTRIBUTE
    key: str
    op: str  # = != < > <= >= LIKE ILIKE IN NOT IN
    value: object  # float, str, or tuple[str, ...]


@dataclass(frozen=True)
class Order:
    entity: str
    key: str
    ascending: bool


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid(f"Invalid filter {text!r}: unexpected text at position {position}: {text[position:][:30]!r}.")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(token: str) -> str:
    quote, body = token[0], token[1:-1]
    if quote == "`":
        return body
    body = body.replace(quote * 2, quote) if quote == "'" else body
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str, *, what: str):
        self.text = text
        self.what = what
        if "\x00" in text:
            raise invalid(f"The {what} may not contain the NUL character.")
        self.tokens = _tokens(text)
        self.i = 0

    def fail(self, message: str):
        return invalid(f"Invalid {self.what} {self.text!r}: {message}")

    def peek(self, offset: int = 0):
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        if token[0] is None:
            raise self.fail("it ends too early.")
        self.i += 1
        return token

    def identifier(self, *, default_entity: str | None) -> tuple[str, str]:
        kind, text = self.take()
        if kind not in ("word", "bq", "str"):
            raise self.fail(f"expected a name such as metrics.accuracy, found {text!r}.")
        first = _unquote(text) if kind != "word" else text
        if self.peek()[0] == "dot" and kind == "word" and first.lower() in _ENTITIES:
            self.take()
            entity = _ENTITIES[first.lower()]
            parts = []
            while True:
                kind, text = self.take()
                if kind == "word":
                    parts.append(text)
                elif kind in ("bq", "str") and not parts:
                    parts.append(_unquote(text))
                    break
                elif kind == "num" and parts:  # a key such as metrics.f1.0 tokenises ".0" as a number
                    parts.append(text.lstrip("."))
                else:
                    raise self.fail(f"expected a key after {first}., found {text!r}.")
                if self.peek()[0] != "dot":
                    break
                self.take()
            key = ".".join(parts)
        else:
            if default_entity is None:
                raise self.fail(
                    f"{first!r} is not an identifier: use metrics.<key>, params.<key>, tags.<key> or attributes.<name>."
                )
            entity, key = default_entity, first
        if not key:
            raise self.fail("a key is empty.")
        return entity, key

    def value(self):
        kind, text = self.take()
        if kind == "num":
            return float(text)
        if kind == "str":
            return _unquote(text)
        if kind == "lparen":
            items = []
            while True:
                kind, text = self.take()
                if kind != "str":
                    raise self.fail(f"a list holds quoted strings only, found {text!r}.")
                items.append(_unquote(text))
                kind, text = self.take()
                if kind == "rparen":
                    return tuple(items)
                if kind != "comma":
                    raise self.fail(f"expected ',' or ')' in a list, found {text!r}.")
        raise self.fail(f"expected a value, found {text!r}.")

    def operator(self) -> str:
        kind, text = self.take()
        if kind == "op":
            return "!=" if text == "<>" else text
        if kind == "word":
            word = text.upper()
            if word in ("LIKE", "ILIKE", "IN"):
                return word
            if word == "NOT" and (self.peek()[1] or "").upper() == "IN":
                self.take()
                return "NOT IN"
        raise self.fail(f"expected a comparison (=, !=, <, >, <=, >=, LIKE, ILIKE, IN, NOT IN), found {text!r}.")


def _check_clause(parser: _Parser, clause: Clause, *, attributes: dict) -> Clause:
    entity, key, op, value = clause.entity, clause.key, clause.op, clause.value
    if entity == ATTRIBUTE:
        if key not in attributes:
            raise parser.fail(f"unknown attribute {key!r}; use one of {', '.join(sorted(set(attributes.values())))}.")
        key = attributes[key]
        numeric = key in NUMERIC_ATTRIBUTES
    else:
        numeric = entity == METRIC
    if numeric:
        if op not in COMPARISONS:
            raise parser.fail(f"{op} does not compare numbers; use =, !=, <, >, <= or >=.")
        if not isinstance(value, float):
            raise parser.fail(f"compare {key!r} with a number, not {value!r}.")
    else:
        if op not in STRING_OPERATORS:
            raise parser.fail(f"{op} does not compare text; use =, !=, LIKE, ILIKE, IN or NOT IN.")
        if op in ("IN", "NOT IN") and not isinstance(value, tuple):
            raise parser.fail(f"{op} takes a list such as ('a', 'b').")
        if op not in ("IN", "NOT IN") and not isinstance(value, str):
            raise parser.fail(f"compare {key!r} with a quoted string, not {value!r}.")
    return Clause(entity, key, op, value)


def parse_filter(text: str | None, *, attributes: dict = RUN_ATTRIBUTES, entities=(METRIC, PARAM, TAG, ATTRIBUTE)):
    """The clauses of a filter string (an empty filter has none); INVALID_PARAMETER_VALUE otherwise."""
    if text is None or not str(text).strip():
        return []
    if not isinstance(text, str) or len(text) > FILTER_MAX:
        raise invalid(f"A filter is a string of at most {FILTER_MAX} characters.")
    parser = _Parser(text, what="filter")
    clauses = []
    while True:
        entity, key = parser.identifier(default_entity=ATTRIBUTE)
        if entity not in entities:
            raise parser.fail(f"{entity}s cannot be searched here.")
        op = parser.operator()
        clauses.append(_check_clause(parser, Clause(entity, key, op, parser.value()), attributes=attributes))
        kind, text_ = parser.peek()
        if kind is None:
            break
        if kind == "word" and text_.upper() == "AND":
            parser.take()
            continue
        raise parser.fail(f"expected AND between clauses, found {text_!r} (MLflow has no OR).")
    if len(clauses) > CLAUSES_MAX:
        raise invalid(f"Use at most {CLAUSES_MAX} clauses in a filter.")
    return clauses


def parse_order_by(items, *, attributes: dict = RUN_ATTRIBUTES, entities=(METRIC, PARAM, TAG, ATTRIBUTE)):
    """The order-by clauses (`metrics.loss ASC`, `attributes.start_time DESC`, `run_name`)."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or len(items) > 10:
        raise invalid("order_by is a list of at most 10 clauses.")
    orders = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > 1000:
            raise invalid(f"Invalid order_by clause {item!r}.")
        parser = _Parser(item, what="order_by clause")
        entity, key = parser.identifier(default_entity=ATTRIBUTE)
        if entity not in entities:
            raise parser.fail(f"runs cannot be ordered by {entity}s here.")
        if entity == ATTRIBUTE:
            if key not in attributes:
                raise parser.fail(f"unknown attribute {key!r}.")
            key = attributes[key]
        ascending = True
        kind, text = parser.peek()
        if kind == "word" and text.upper() in ("ASC", "DESC"):
            ascending = text.upper() == "ASC"
            parser.take()
        if parser.peek()[0] is not None:
            raise parser.fail("expected only a name and ASC or DESC.")
        orders.append(Order(entity, key, ascending))
    return orders


def like_regex(pattern: str, *, atomic: bool = False) -> str:
    """A SQL LIKE pattern (% any run of characters, _ one character) as an anchored regular expression.

    `atomic` (for Python's engine, which SQLite calls): each middle segment is matched at its
    earliest place and never retried, the greedy wildcard match, so "%a%a%a%b" cannot backtrack
    for seconds over a long value; "." matches newlines as in LIKE. PostgreSQL's engine does not
    backtrack and knows no atomic groups."""

    def segment(text: str) -> str:
        return "".join("." if char == "_" else re.escape(char) for char in text)

    parts = pattern.split("%")
    if len(parts) == 1:
        body = segment(pattern)
    else:
        middle = [part for part in parts[1:-1] if part]
        wrap = "(?>.*?{})" if atomic else ".*{}"
        body = segment(parts[0]) + "".join(wrap.format(segment(part)) for part in middle) + ".*" + segment(parts[-1])
    return ("(?s)" if atomic else "") + "^" + body + "$"
