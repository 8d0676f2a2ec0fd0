"""Hand-written recursive-descent LogQL parser.

Builds :mod:`ast` nodes from :func:`lexer.tokenize` output. Errors follow Loki's goyacc wording
(``parse error at line 1, col 12: syntax error: unexpected IDENTIFIER, expecting STRING``) so that
Grafana shows familiar messages. Binary operators use Prometheus precedence: ``^`` (right
associative) > ``* / %`` > ``+ -`` > comparisons > ``and unless`` > ``or``.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from lookout.logs.model import LabelMatcher

from . import ast
from .errors import ParseError
from .lexer import BYTES, DURATION, EOF, IDENT, NUMBER, RANGE, STRING, Token, parse_number, tokenize
from .units import literal_value, parse_go_duration

_CMP = ("==", "!=", ">", ">=", "<", "<=")
_LEVELS: list[tuple[str, ...]] = [("or",), ("and", "unless"), _CMP, ("+", "-"), ("*", "/", "%"), ("^",)]
_LF_OPS = ("=", "!=", "=~", "!~", ">", ">=", "<", "<=", "==")
_PARSER_WORDS = ("json", "logfmt", "regexp", "pattern", "unpack", "line_format", "label_format", "decolorize",
                 "drop", "keep", "unwrap", "distinct")


def check_regex(pattern: str) -> None:
    """Raise ParseError if RE2 (the engine pyarrow and DuckDB use) rejects ``pattern``."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        detail = str(e).split(":", 1)[-1].strip()
        raise ParseError(f"error parsing regexp: {detail}: `{pattern}`") from None


def duration_ns(text: str) -> int:
    """Nanoseconds in a range/offset duration literal (Prometheus units plus d, w, y)."""
    return round(parse_go_duration(text, literal=True) * 1e9)


class Parser:
    """One parse of one query string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    # ------------------------------------------------------------ helpers

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.toks[self.i]
        if self.i < len(self.toks) - 1:
            self.i += 1
        return t

    def error(self, expecting: str | None = None, tok: Token | None = None) -> ParseError:
        t = tok or self.tok
        msg = f"syntax error: unexpected {t.desc()}"
        if expecting:
            msg += f", expecting {expecting}"
        return ParseError(msg, t.line, t.col)

    def expect_op(self, op: str) -> Token:
        if not self.tok.is_op(op):
            raise self.error(op)
        return self.advance()

    def expect_kind(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(kind)
        return self.advance()

    def expect_ident(self) -> str:
        return self.expect_kind(IDENT).text

    # ------------------------------------------------------------ entry

    def parse(self) -> ast.Expr:
        if self.tok.kind == EOF:
            raise ParseError("syntax error: unexpected $end", 1, 1)
        expr = self.parse_expr()
        if self.tok.kind != EOF:
            raise self.error()
        return expr

    def parse_expr(self) -> ast.Expr:
        return self.parse_binary(0)

    def parse_binary(self, level: int) -> ast.Expr:
        if level == len(_LEVELS):
            return self.parse_unary()
        ops = _LEVELS[level]
        lhs = self.parse_binary(level + 1)
        while self._at_binop(ops):
            op_tok = self.advance()
            op = op_tok.text
            bool_mod = False
            if self.tok.is_word("bool"):
                if op not in _CMP:
                    raise ParseError("bool modifier can only be used on comparison operators", self.tok.line,
                                     self.tok.col)
                self.advance()
                bool_mod = True
            matching = self.parse_matching(op)
            # ^ is right associative: parse the right side at the same level.
            rhs = self.parse_binary(level if op == "^" else level + 1)
            lhs = self.make_binop(op, lhs, rhs, bool_mod, matching, op_tok)
        return lhs

    def _at_binop(self, ops: tuple[str, ...]) -> bool:
        t = self.tok
        if t.kind == IDENT:
            return t.text in ops and t.text in ("or", "and", "unless")
        return t.kind == "OP" and t.text in ops

    def parse_matching(self, op: str) -> ast.VectorMatching:
        m = ast.VectorMatching()
        if op in ("and", "or", "unless"):
            m.card = "many-to-many"
        if self.tok.is_word("on", "ignoring"):
            m.on = self.advance().text == "on"
            m.labels = self.parse_label_list()
            m.explicit = True
            if self.tok.is_word("group_left", "group_right"):
                if op in ("and", "or", "unless"):
                    raise self.error()
                m.card = "many-to-one" if self.advance().text == "group_left" else "one-to-many"
                if self.tok.is_op("("):
                    m.include = self.parse_label_list()
        elif self.tok.is_word("group_left", "group_right"):
            raise self.error()
        return m

    def make_binop(self, op: str, lhs: ast.Expr, rhs: ast.Expr, bool_mod: bool, matching: ast.VectorMatching,
                   tok: Token) -> ast.BinOp:
        for side in (lhs, rhs):
            if isinstance(side, ast.LogExpr):
                raise ParseError(f"unexpected type for left leg of binary operation ({op}): log", tok.line, tok.col)
        if op in ("and", "or", "unless"):
            if _is_literal(lhs):
                raise ParseError(f"unexpected literal for left leg of logical/set binary operation ({op})",
                                 tok.line, tok.col)
            if _is_literal(rhs):
                raise ParseError(f"unexpected literal for right leg of logical/set binary operation ({op})",
                                 tok.line, tok.col)
        return ast.BinOp(op, lhs, rhs, bool_mod, matching)  # type: ignore[arg-type]

    def parse_unary(self) -> ast.Expr:
        t = self.tok
        if t.is_op("+", "-"):
            self.advance()
            if self.tok.kind != NUMBER:
                raise self.error("NUMBER")
            v = self.number(self.advance())
            return ast.Literal(-v if t.text == "-" else v)
        return self.parse_primary()

    def number(self, t: Token) -> float:
        try:
            return parse_number(t.text)
        except ValueError:
            raise ParseError(f"unable to parse literal as a float: {t.text}", t.line, t.col) from None

    def parse_primary(self) -> ast.Expr:
        t = self.tok
        if t.kind == NUMBER:
            self.advance()
            return ast.Literal(self.number(t))
        if t.is_op("{"):
            return self.parse_log_expr()
        if t.is_op("("):
            # A parenthesised log expression followed by a range only makes sense inside a range
            # aggregation; here it is a sample expression (or a log query in parentheses).
            self.advance()
            inner = self.parse_expr()
            self.expect_op(")")
            if isinstance(inner, ast.LogExpr):
                return inner
            return ast.Paren(inner)  # type: ignore[arg-type]
        if t.kind == IDENT:
            if t.text in ast.RANGE_OPS:
                return self.parse_range_agg()
            if t.text in ast.VECTOR_OPS:
                return self.parse_vector_agg()
            if t.text == "label_replace":
                return self.parse_label_replace()
            if t.text == "vector":
                self.advance()
                self.expect_op("(")
                if self.tok.kind != NUMBER:
                    raise self.error("NUMBER")
                v = self.number(self.advance())
                self.expect_op(")")
                return ast.VectorLit(v)
        raise self.error()

    # ------------------------------------------------------------ sample expressions

    def parse_label_list(self) -> list[str]:
        self.expect_op("(")
        out: list[str] = []
        if self.tok.is_op(")"):
            self.advance()
            return out
        while True:
            out.append(self.expect_ident())
            if self.tok.is_op(","):
                self.advance()
                continue
            self.expect_op(")")
            return out

    def parse_grouping(self) -> ast.Grouping | None:
        if self.tok.is_word("by", "without"):
            without = self.advance().text == "without"
            return ast.Grouping(without, self.parse_label_list())
        return None

    def parse_range_agg(self) -> ast.RangeAgg:
        op_tok = self.advance()
        op = op_tok.text
        self.expect_op("(")
        param = None
        if self.tok.kind == NUMBER:
            param = self.number(self.advance())
            self.expect_op(",")
        rng = self.parse_log_range()
        self.expect_op(")")
        grouping = self.parse_grouping()
        return ast.RangeAgg(op, rng, param, grouping)

    def parse_log_range(self) -> ast.LogRange:
        """``{..} | stages [5m] offset 1h``, ``({..} | stages)[5m]``, ``{..}[5m] | stages`` or
        ``(<log range>)``."""
        if self.tok.is_op("("):
            self.advance()
            if self.tok.is_op("(") or self.tok.is_op("{"):
                # Either a parenthesised log expression (range follows the ')') or a full range.
                save = self.i
                inner_log = self.parse_log_expr(allow_unwrap=True)
                if self.tok.kind == RANGE:
                    self.i = save
                    rng = self.parse_log_range()
                    self.expect_op(")")
                    return rng
                self.expect_op(")")
                return self.finish_range(inner_log)
            raise self.error()
        if not self.tok.is_op("{"):
            raise self.error("{")
        log = self.parse_log_expr(allow_unwrap=True)
        return self.finish_range(log)

    def finish_range(self, log: ast.LogExpr) -> ast.LogRange:
        if self.tok.kind != RANGE:
            raise self.error("RANGE" if self.tok.kind != EOF else None)
        rtok = self.advance()
        try:
            rng = duration_ns(rtok.text)
        except ValueError:
            raise ParseError(f"syntax error: unexpected RANGE: invalid duration [{rtok.text}]", rtok.line,
                             rtok.col) from None
        offset = 0
        if self.tok.is_word("offset"):
            self.advance()
            d = self.expect_kind(DURATION)
            offset = duration_ns(d.text)
        # The pipeline may also come after the range: {app="a"}[5m] | json
        if self.tok.is_op("|", "|=", "!=", "|~", "!~", "|>", "!>") and not log.stages:
            more = self.parse_stages(allow_unwrap=True)
            log.stages.extend(more)
        unwrap = None
        stages = []
        for s in log.stages:
            if isinstance(s, ast.Unwrap):
                unwrap = s
            else:
                stages.append(s)
        log.stages = stages
        return ast.LogRange(log, rng, offset, unwrap)

    def parse_vector_agg(self) -> ast.VectorAgg:
        op_tok = self.advance()
        op = op_tok.text
        grouping = self.parse_grouping()
        self.expect_op("(")
        param = None
        if op in ("topk", "bottomk", "approx_topk"):
            if self.tok.kind == NUMBER and self.peek().is_op(","):
                ptok = self.advance()
                param = self.number(ptok)
                self.advance()
                if param != int(param) or param <= 0:
                    raise ParseError(f"invalid parameter for operation {op}({ptok.text}, ...): "
                                     "parameter must be an integer greater than 0", ptok.line, ptok.col)
            else:
                raise ParseError(f"syntax error: parameter required for operation {op}", op_tok.line, op_tok.col)
        expr = self.parse_expr()
        if isinstance(expr, ast.LogExpr):
            raise self.error()
        self.expect_op(")")
        g2 = self.parse_grouping()
        if g2 is not None:
            if grouping is not None:
                raise self.error()
            grouping = g2
        if op == "approx_topk" and grouping is not None:
            raise ParseError("grouping not allowed for approx_topk aggregation", op_tok.line, op_tok.col)
        return ast.VectorAgg(op, expr, grouping, param)  # type: ignore[arg-type]

    def parse_label_replace(self) -> ast.LabelReplace:
        self.advance()
        self.expect_op("(")
        expr = self.parse_expr()
        args = []
        for _ in range(4):
            self.expect_op(",")
            args.append(self.expect_kind(STRING).text)
        self.expect_op(")")
        try:
            re.compile(args[3])
        except re.error as e:
            raise ParseError(f"invalid regex in label_replace: {e}") from None
        check_regex(args[3])
        return ast.LabelReplace(expr, args[0], args[1], args[2], args[3])  # type: ignore[arg-type]

    # ------------------------------------------------------------ log expressions

    def parse_log_expr(self, allow_unwrap: bool = False) -> ast.LogExpr:
        if self.tok.is_op("("):
            self.advance()
            inner = self.parse_log_expr(allow_unwrap)
            self.expect_op(")")
            return inner
        matchers = self.parse_selector()
        stages = self.parse_stages(allow_unwrap)
        return ast.LogExpr(matchers, stages)

    def parse_selector(self) -> list[LabelMatcher]:
        self.expect_op("{")
        out: list[LabelMatcher] = []
        while True:
            if self.tok.kind != IDENT:
                raise self.error("IDENTIFIER")
            name = self.advance().text
            if not self.tok.is_op("=", "!=", "=~", "!~"):
                raise self.error()
            op = self.advance().text
            val = self.expect_kind(STRING)
            if op in ("=~", "!~"):
                check_regex(val.text)
            out.append(LabelMatcher(name, op, val.text))
            if self.tok.is_op(","):
                self.advance()
                continue
            self.expect_op("}")
            return out

    def parse_stages(self, allow_unwrap: bool) -> list[ast.Stage]:
        stages: list[ast.Stage] = []
        unwrap: ast.Unwrap | None = None
        while True:
            t = self.tok
            if t.is_op("|=", "!=", "|~", "!~", "|>", "!>"):
                if unwrap is not None:
                    raise self.error()
                stages.append(self.parse_line_filter())
                continue
            if not t.is_op("|"):
                break
            self.advance()
            w = self.tok
            if unwrap is not None:
                unwrap.post_filters.append(ast.LabelFilter(self.parse_lf_or()))
                continue
            is_filter = w.kind == IDENT and self.peek().is_op(*_LF_OPS)
            if w.kind == IDENT and w.text in _PARSER_WORDS and not is_filter:
                stage = self.parse_named_stage()
                if isinstance(stage, ast.Unwrap):
                    if not allow_unwrap:
                        raise self.error(tok=w)
                    unwrap = stage
                stages.append(stage)
                continue
            stages.append(ast.LabelFilter(self.parse_lf_or()))
        return stages

    def parse_line_filter(self) -> ast.LineFilter:
        op = self.advance().text
        values: list[tuple[str, str]] = []
        while True:
            t = self.tok
            if t.kind == STRING:
                self.advance()
                values.append(("str", t.text))
            elif t.is_word("ip"):
                self.advance()
                self.expect_op("(")
                v = self.expect_kind(STRING).text
                self.expect_op(")")
                values.append(("ip", v))
            else:
                raise self.error("STRING")
            if self.tok.is_word("or"):
                self.advance()
                continue
            break
        if any(k == "ip" for k, _ in values) and op not in ("|=", "!="):
            raise ParseError("ip: invalid operation, only |= and != are supported", t.line, t.col)
        for k, v in values:
            if k == "ip":
                from .ipfilter import parse_ip_pattern

                parse_ip_pattern(v)
            elif op in ("|~", "!~"):
                check_regex(v)
            elif op in ("|>", "!>"):
                from .patterns import parse_pattern

                if any(name is not None and name != "_" for name in parse_pattern(v, line_filter=True)[1]):
                    raise ParseError("pattern: named captures are not allowed in a line filter pattern")
        return ast.LineFilter(op, values)

    def parse_params(self) -> list[tuple[str, str]]:
        """``a, b="x.y"`` (json / logfmt extraction parameters)."""
        params: list[tuple[str, str]] = []
        while self.tok.kind == IDENT and not self.peek().is_op(*[o for o in _LF_OPS if o != "="]):
            name = self.advance().text
            expr = name
            if self.tok.is_op("="):
                self.advance()
                expr = self.expect_kind(STRING).text
            params.append((name, expr))
            if self.tok.is_op(","):
                self.advance()
                continue
            break
        return params

    def parse_named_stage(self) -> ast.Stage | ast.Unwrap:
        w = self.advance()
        name = w.text
        if name == "json":
            params = self.parse_params()
            from .jsonpath import parse_json_expr

            for _, e in params:
                parse_json_expr(e)
            return ast.JsonParser(params)
        if name == "logfmt":
            strict = keep_empty = False
            while self.tok.is_op("-") and self.peek().is_op("-"):
                self.advance()
                self.advance()
                flag = self.expect_ident()
                if flag == "strict":
                    strict = True
                elif flag == "keep":
                    self.expect_op("-")
                    if self.expect_ident() != "empty":
                        raise self.error()
                    keep_empty = True
                else:
                    raise ParseError(f"syntax error: unexpected flag --{flag}", w.line, w.col)
            return ast.LogfmtParser(self.parse_params(), strict, keep_empty)
        if name == "regexp":
            t = self.expect_kind(STRING)
            check_regex(t.text)
            names = re.findall(r"\(\?P?<([a-zA-Z_][a-zA-Z0-9_]*)>", t.text)
            if not names:
                raise ParseError("at least one named capture must be supplied", t.line, t.col)
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise ParseError(f"duplicate extracted label name '{dup}'", t.line, t.col)
            return ast.RegexpParser(t.text, names)
        if name == "pattern":
            t = self.expect_kind(STRING)
            from .patterns import parse_pattern

            _, caps = parse_pattern(t.text)
            if not any(c is not None and c != "_" for c in caps):
                raise ParseError("at least one capture is required", t.line, t.col)
            return ast.PatternParser(t.text)
        if name == "unpack":
            return ast.UnpackParser()
        if name == "decolorize":
            return ast.Decolorize()
        if name == "line_format":
            t = self.expect_kind(STRING)
            from .template import compile_template

            compile_template(t.text, "line")
            return ast.LineFormat(t.text)
        if name == "label_format":
            items: list[tuple[str, bool, str]] = []
            seen: set[str] = set()
            from .template import compile_template

            while True:
                dst = self.expect_ident()
                self.expect_op("=")
                if self.tok.kind == STRING:
                    v = self.advance().text
                    compile_template(v, "label")
                    items.append((dst, True, v))
                else:
                    items.append((dst, False, self.expect_ident()))
                if dst in seen:
                    raise ParseError(f"label_format: multiple label operations on the same label name {dst!r}",
                                     w.line, w.col)
                seen.add(dst)
                if self.tok.is_op(","):
                    self.advance()
                    continue
                return ast.LabelFormat(items)
        if name in ("drop", "keep"):
            dk: list[tuple[str, LabelMatcher | None]] = []
            while True:
                n = self.expect_ident()
                if self.tok.is_op("=", "!=", "=~", "!~"):
                    op = self.advance().text
                    v = self.expect_kind(STRING).text
                    dk.append((n, LabelMatcher(n, op, v)))
                else:
                    dk.append((n, None))
                if self.tok.is_op(","):
                    self.advance()
                    continue
                return ast.DropKeep(name == "keep", dk)
        if name == "distinct":
            labels = [self.expect_ident()]
            while self.tok.is_op(","):
                self.advance()
                labels.append(self.expect_ident())
            return ast.Distinct(labels)
        if name == "unwrap":
            conv = ""
            if self.tok.is_word("duration", "duration_seconds", "bytes") and self.peek().is_op("("):
                conv = self.advance().text
                self.advance()
                label = self.expect_ident()
                self.expect_op(")")
            else:
                label = self.expect_ident()
            return ast.Unwrap(label, conv)
        raise self.error(tok=w)

    # ------------------------------------------------------------ label filters

    def parse_lf_or(self) -> ast.LabelFilterExpr:
        left = self.parse_lf_and()
        while self.tok.is_word("or"):
            self.advance()
            right = self.parse_lf_and()
            left = ast.LFBinary("or", left, right)
        return left

    def parse_lf_and(self) -> ast.LabelFilterExpr:
        left = self.parse_lf_primary()
        while True:
            t = self.tok
            if t.is_word("and") or t.is_op(","):
                self.advance()
            elif t.is_op("(") or (t.kind == IDENT and t.text not in ("or", "offset")):
                pass  # whitespace is an implicit and
            else:
                return left
            right = self.parse_lf_primary()
            left = ast.LFBinary("and", left, right)

    def parse_lf_primary(self) -> ast.LabelFilterExpr:
        if self.tok.is_op("("):
            self.advance()
            e = self.parse_lf_or()
            self.expect_op(")")
            if isinstance(e, ast.LFBinary):
                e.paren = True
            return e
        if self.tok.kind != IDENT:
            raise self.error("IDENTIFIER")
        name = self.advance().text
        if not self.tok.is_op(*_LF_OPS):
            raise self.error()
        op_tok = self.advance()
        op = op_tok.text
        v = self.tok
        if v.is_word("ip"):
            if op not in ("=", "!="):
                raise self.error()
            self.advance()
            self.expect_op("(")
            pat = self.expect_kind(STRING).text
            self.expect_op(")")
            from .ipfilter import parse_ip_pattern

            parse_ip_pattern(pat)
            return ast.LFIp(name, op, pat)
        if v.kind == STRING:
            if op not in ("=", "!=", "=~", "!~"):
                raise self.error()
            self.advance()
            if op in ("=~", "!~"):
                check_regex(v.text)
            return ast.LFString(name, op, v.text)
        if op in ("=~", "!~"):
            raise self.error("STRING")
        sign = ""
        if v.is_op("-", "+"):
            sign = self.advance().text
            v = self.tok
            if v.kind != NUMBER:
                raise self.error("NUMBER")
        if v.kind in (NUMBER, DURATION, BYTES):
            self.advance()
            cmp_op = "==" if op == "=" else op
            if v.kind == NUMBER:
                val = self.number(v)
                return ast.LFNumeric(name, cmp_op, "number", -val if sign == "-" else val, sign + v.text)
            kind = "duration" if v.kind == DURATION else "bytes"
            try:
                val = literal_value(kind, v.text)
            except ValueError as e:
                raise ParseError(str(e), v.line, v.col) from None
            return ast.LFNumeric(name, cmp_op, kind, val, v.text)
        raise self.error()


def _is_literal(e: ast.Expr) -> bool:
    while isinstance(e, ast.Paren):
        e = e.expr
    return isinstance(e, ast.Literal)


def parse(query: str) -> ast.Expr:
    """Parse ``query`` into a syntax tree (raises :class:`ParseError`)."""
    return Parser(query).parse()
