"""Vectorized evaluation of a parsed OTTL condition over a :class:`~lookout.pipeline.values.Context`.

The Collector evaluates OTTL one item at a time; doing that in Python would cost microseconds
per span on the hot path. Here every node evaluates for *all* items at once: a value node gives
one Arrow array per OTLP type (string/int/double/bool/bytes — the :class:`Values` split), a
boolean node gives one numpy mask. OTTL's comparison rules then become a few Arrow kernels:
compare the pairs of arrays whose types may be compared, OR the results, and treat "both nil"
specially. Literals stay Arrow scalars, so ``name == "x"`` is a single ``equal(array, scalar)``.

Contexts may offer an optional ``value_kinds(fields, keys) -> ValueKinds`` to say where a path
holds a map, a list or bytes (the flat span table keeps those serialized); without it
``IsMap``/``IsList`` are false and byte literals only compare with ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.ottl.parser import (
    BoolOp,
    Call,
    Compare,
    ListExpr,
    Literal,
    Math,
    Node,
    Not,
    OttlError,
    Path,
    error,
    parse_condition,
)
from lookout.pipeline.values import Context, PathError, Values


@dataclass(slots=True)
class ValueKinds:
    """Facts about a path that :class:`Values` does not carry: where the value is a map, a list
    or a byte string (``bytes`` holds it there and is null elsewhere)."""

    is_map: np.ndarray
    is_list: np.ndarray
    bytes: pa.Array


Arr = Any  # pa.Array | pa.Scalar | None (None: null for every item)


@dataclass(slots=True)
class _V:
    """A value node's result: per-type arrays or scalars, as in :class:`Values`."""

    str: Arr = None
    int: Arr = None
    dbl: Arr = None
    bool: Arr = None
    bytes: Arr = None
    present: np.ndarray | bool = False
    path: Path | None = None  # set for path values, to fetch ValueKinds on demand


_CMP: dict[str, Callable[..., Any]] = {
    "==": pc.equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal,
}
_ID_FIELDS = {("trace_id",), ("span_id",), ("parent_span_id",), ("span", "trace_id"), ("span", "span_id"),
              ("span", "parent_span_id")}
_INT_RE = r"^[+-]?0*[0-9]{1,18}$"
_FLOAT_RE = (r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
             r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$")
_I64_LIMIT = 2.0**63


def _arr(x: Any) -> Arr:
    if isinstance(x, pa.ChunkedArray):
        return x.combine_chunks()
    return x


def _typed(x: pa.Array | pa.ChunkedArray) -> Arr:
    """A path's per-type array, or None when it is all null — most paths hold one type, and
    skipping the others saves their comparison kernels."""
    x = _arr(x)
    return None if x.null_count == len(x) else x


def _valid(x: Arr, n: int) -> np.ndarray:
    if x is None:
        return np.zeros(n, dtype=np.bool_)
    if isinstance(x, pa.Scalar):
        return np.full(n, x.is_valid, dtype=np.bool_)
    return x.is_valid().to_numpy(zero_copy_only=False)


def _mask(x: Arr | np.ndarray | bool, n: int) -> np.ndarray:
    """A boolean Arrow result as a numpy mask, null meaning false."""
    if x is None:
        return np.zeros(n, dtype=np.bool_)
    if isinstance(x, bool | np.bool_):
        return np.full(n, bool(x), dtype=np.bool_)
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, pa.Scalar):
        return np.full(n, bool(x.is_valid and x.as_py()), dtype=np.bool_)
    return _arr(x).fill_null(False).to_numpy(zero_copy_only=False)


def _coalesce(*parts: Arr) -> Arr:
    got = [p for p in parts if p is not None]
    if not got:
        return None
    if len(got) == 1:
        return got[0]
    return pc.coalesce(*got)


def _null_where(x: Arr, cond: Arr) -> Arr:
    """``x`` with nulls where ``cond`` holds (division by zero, unrepresentable conversions)."""
    if isinstance(cond, pa.Scalar):
        return pa.scalar(None, x.type) if cond.as_py() else x
    return pc.if_else(cond, pa.scalar(None, x.type), x)


class _Evaluator:
    """One evaluation of one condition over one context; caches path lookups so a path used
    twice is read once."""

    def __init__(self, text: str, ctx: Context) -> None:
        self.text = text
        self.ctx = ctx
        self.n = len(ctx)
        self._paths: dict[tuple[tuple[str, ...], tuple[str, ...]], Values] = {}

    # -- booleans --------------------------------------------------------------------------

    def boolean(self, node: Node) -> np.ndarray:
        n = self.n
        if isinstance(node, Literal):
            return np.full(n, bool(node.value), dtype=np.bool_)
        if isinstance(node, Not):
            return ~self.boolean(node.operand)
        if isinstance(node, BoolOp):
            out = self.boolean(node.operands[0])
            for operand in node.operands[1:]:
                # Short-circuit per batch: once decided for every item, skip the rest.
                if node.op == "and":
                    if not out.any():
                        break
                    out = out & self.boolean(operand)
                else:
                    if out.all():
                        break
                    out = out | self.boolean(operand)
            return out
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Call):
            return _mask(self.call(node).bool, n)
        raise error(self.text, node.pos, "expected a boolean expression")  # parser prevents this

    def compare(self, node: Compare) -> np.ndarray:
        left, right = node.left, node.right
        # Ids are stored as bytes but OTTL users write SpanID(0x...) or 0x...: compare their hex
        # strings instead (same order, and every Context resolves ``<id>.string``).
        left, right = self._ids_as_hex(left, right)
        right, left = self._ids_as_hex(right, left)
        a = self.value(left)
        b = self.value(right)
        if a.bytes is not None and b.path is not None and b.bytes is None:
            b = self._with_bytes(b)
        if b.bytes is not None and a.path is not None and a.bytes is None:
            a = self._with_bytes(a)
        return self._compare(node.op, a, b)

    def _ids_as_hex(self, lit: Node, other: Node) -> tuple[Node, Node]:
        if isinstance(lit, Call) and lit.name in ("SpanID", "TraceID"):
            lit = lit.args[0]
        if (isinstance(lit, Literal) and lit.type == "bytes" and isinstance(other, Path)
                and other.fields in _ID_FIELDS):
            hex_lit = Literal(lit.pos, "string", bytes(lit.value).hex())  # type: ignore[arg-type]
            return hex_lit, Path(other.pos, (*other.fields, "string"), (), other.text + ".string")
        return lit, other

    def _compare(self, op: str, a: _V, b: _V) -> np.ndarray:
        n = self.n
        if op == "!=":
            return ~self._compare("==", a, b)
        fn = _CMP[op]
        out = np.zeros(n, dtype=np.bool_)
        for x, y in ((a.str, b.str), (a.int, b.int), (a.dbl, b.dbl), (a.bool, b.bool), (a.bytes, b.bytes)):
            if x is not None and y is not None:
                out |= _mask(fn(x, y), n)
        if a.int is not None and b.dbl is not None:
            out |= _mask(fn(pc.cast(a.int, pa.float64(), safe=False), b.dbl), n)
        if a.dbl is not None and b.int is not None:
            out |= _mask(fn(a.dbl, pc.cast(b.int, pa.float64(), safe=False)), n)
        if op in ("==", "<=", ">="):
            # nil == nil (and <=, >=) is true in OTTL; nil against anything else is not.
            out |= ~_mask(a.present, n) & ~_mask(b.present, n)
        return out

    # -- values ----------------------------------------------------------------------------

    def value(self, node: Node) -> _V:
        n = self.n
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Path):
            v = self.path(node)
            return _V(str=_typed(v.str), int=_typed(v.int), dbl=_typed(v.dbl), bool=_typed(v.bool),
                      present=np.asarray(v.present, dtype=np.bool_), path=node)
        if isinstance(node, Math):
            return self.math(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Compare | BoolOp | Not):
            return _V(bool=pa.array(self.boolean(node)), present=np.ones(n, dtype=np.bool_))
        raise error(self.text, node.pos, "expected a value")  # lists: parser prevents this

    def literal(self, node: Literal) -> _V:
        present = node.type != "nil"
        v = _V(present=np.full(self.n, present, dtype=np.bool_))
        if node.type == "string":
            v.str = pa.scalar(node.value, pa.string())
        elif node.type == "int":
            v.int = pa.scalar(node.value, pa.int64())
        elif node.type == "float":
            v.dbl = pa.scalar(node.value, pa.float64())
        elif node.type == "bool":
            v.bool = pa.scalar(node.value, pa.bool_())
        elif node.type == "bytes":
            v.bytes = pa.scalar(node.value, pa.binary())
        return v

    def path(self, node: Path) -> Values:
        key = (node.fields, node.keys)
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        try:
            v = self.ctx.values(node.fields, node.keys)
        except PathError as exc:
            raise error(self.text, node.pos, f'path "{node.text}": {exc}') from None
        if v.n != self.n:
            raise error(self.text, node.pos, f'path "{node.text}": context returned {v.n} values for {self.n} items')
        self._paths[key] = v
        return v

    def kinds(self, node: Path) -> ValueKinds | None:
        fn = getattr(self.ctx, "value_kinds", None)
        if fn is None:
            return None
        try:
            return fn(node.fields, node.keys)
        except PathError as exc:
            raise error(self.text, node.pos, f'path "{node.text}": {exc}') from None

    def _with_bytes(self, v: _V) -> _V:
        assert v.path is not None
        k = self.kinds(v.path)
        if k is not None:
            v.bytes = _arr(k.bytes)
        return v

    def math(self, node: Math) -> _V:
        a = self.value(node.left)
        b = self.value(node.right)
        fn = {"+": pc.add, "-": pc.subtract, "*": pc.multiply, "/": pc.divide}[node.op]
        out_int = out_dbl = None
        # Mixed int/float math is an error in OTTL (nil result), so only like types combine.
        if a.int is not None and b.int is not None:
            divisor = _null_where(b.int, pc.equal(b.int, 0)) if node.op == "/" else b.int
            out_int = fn(a.int, divisor)
        if a.dbl is not None and b.dbl is not None:
            divisor = _null_where(b.dbl, pc.equal(b.dbl, 0.0)) if node.op == "/" else b.dbl
            out_dbl = fn(a.dbl, divisor)
        return _V(int=out_int, dbl=out_dbl, present=_valid(out_int, self.n) | _valid(out_dbl, self.n))

    # -- converters ------------------------------------------------------------------------

    def call(self, node: Call) -> _V:
        n = self.n
        name = node.name
        ones = np.ones(n, dtype=np.bool_)

        def boolean(mask: np.ndarray) -> _V:
            return _V(bool=pa.array(mask, pa.bool_()), present=ones)

        if name == "IsRootSpan":
            parent = self.path(Path(node.pos, ("parent_span_id", "string"), (), "parent_span_id.string"))
            return boolean(~_valid(_arr(parent.str), n) | _mask(pc.equal(_arr(parent.str), ""), n))
        if name in ("SpanID", "TraceID"):
            return self.literal(node.args[0])  # type: ignore[arg-type]
        if name == "Concat":
            items: ListExpr = node.args[0]  # type: ignore[assignment]
            sep: str = node.args[1].value  # type: ignore[union-attr,assignment]
            parts = []
            for item in items.items:
                s = _string_like(self.value(item))
                parts.append(pa.scalar("<nil>") if s is None else pc.fill_null(s, "<nil>"))
            if not parts:
                return _V(str=pa.scalar("", pa.string()), present=ones)
            return _V(str=pc.binary_join_element_wise(*parts, sep), present=ones)

        target = self.value(node.args[0])
        if name in ("IsString", "IsInt", "IsDouble", "IsBool"):
            attr = {"IsString": "str", "IsInt": "int", "IsDouble": "dbl", "IsBool": "bool"}[name]
            return boolean(_valid(getattr(target, attr), n))
        if name in ("IsMap", "IsList"):
            k = self.kinds(target.path) if target.path is not None else None
            if k is None:
                return boolean(np.zeros(n, dtype=np.bool_))
            return boolean(np.asarray(k.is_map if name == "IsMap" else k.is_list, dtype=np.bool_))
        if name == "IsMatch":
            if target.path is not None and target.bytes is None:
                target = self._with_bytes(target)
            s = _string_like(target)
            pattern: str = node.args[1].value  # type: ignore[union-attr,assignment]
            if s is None:
                return boolean(np.zeros(n, dtype=np.bool_))
            return boolean(_mask(pc.match_substring_regex(s, pattern=pattern), n))
        if name in ("HasPrefix", "HasSuffix"):
            affix: str = node.args[1].value  # type: ignore[union-attr,assignment]
            if target.str is None:
                return boolean(np.zeros(n, dtype=np.bool_))
            fn = pc.starts_with if name == "HasPrefix" else pc.ends_with
            return boolean(_mask(fn(target.str, pattern=affix), n))
        if name == "Len":
            # Go's len(): bytes of the UTF-8 string.
            out = None if target.str is None else pc.cast(pc.binary_length(target.str), pa.int64())
            return _V(int=out, present=_valid(out, n))
        if name == "Int":
            out = _to_int(target)
            return _V(int=out, present=_valid(out, n))
        if name == "Double":
            out = _to_double(target)
            return _V(dbl=out, present=_valid(out, n))
        if name == "String":
            if target.path is not None and target.bytes is None:
                target = self._with_bytes(target)
            out = _string_like(target)
            return _V(str=out, present=_valid(out, n))
        if name in ("ToLowerCase", "ToUpperCase"):
            if target.str is None:
                return _V(present=np.zeros(n, dtype=np.bool_))
            out = (pc.utf8_lower if name == "ToLowerCase" else pc.utf8_upper)(target.str)
            return _V(str=out, present=_valid(out, n))
        raise error(self.text, node.pos, f'unknown converter "{name}"')  # parser prevents this


def _string_like(v: _V) -> Arr:
    """OTTL's StringLikeGetter: strings as they are, numbers and bools formatted, bytes as hex;
    nil (and maps/lists, which would be JSON in the Collector) stays null."""
    parts: list[Arr] = [v.str]
    if v.int is not None:
        parts.append(pc.cast(v.int, pa.string()))
    if v.dbl is not None:
        parts.append(pc.cast(v.dbl, pa.string()))
    if v.bool is not None:
        parts.append(pc.cast(v.bool, pa.string()))
    if v.bytes is not None:
        parts.append(hex_strings(v.bytes))
    return _coalesce(*parts)


def _to_int(v: _V) -> Arr:
    """OTTL ``Int``: ints as they are, doubles truncated, numeric strings parsed, bools 1/0."""
    parts: list[Arr] = [v.int]
    if v.dbl is not None:
        t = pc.trunc(v.dbl)
        bad = pc.or_(pc.invert(pc.is_finite(t)), pc.greater_equal(pc.abs(t), _I64_LIMIT))
        t = _null_where(t, bad)
        parts.append(pc.cast(t, pa.int64(), safe=False))
    if v.str is not None:
        ok = pc.match_substring_regex(v.str, pattern=_INT_RE)
        s = _null_where(v.str, pc.invert(ok))
        parts.append(pc.cast(s, pa.int64()))
    if v.bool is not None:
        parts.append(pc.cast(v.bool, pa.int64()))
    return _coalesce(*parts)


def _to_double(v: _V) -> Arr:
    """OTTL ``Double``: numbers as float64, numeric strings parsed, bools 1.0/0.0."""
    parts: list[Arr] = [v.dbl]
    if v.int is not None:
        parts.append(pc.cast(v.int, pa.float64(), safe=False))
    if v.str is not None:
        ok = pc.match_substring_regex(v.str, pattern=_FLOAT_RE)
        s = _null_where(v.str, pc.invert(ok))
        parts.append(pc.cast(s, pa.float64()))
    if v.bool is not None:
        parts.append(pc.cast(v.bool, pa.float64()))
    return _coalesce(*parts)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_strings(arr: pa.Array | pa.Scalar) -> pa.Array | pa.Scalar:
    """Lower-case hex of each binary value (ids, bytes attributes) without a loop: every data
    byte becomes two characters and every offset doubles."""
    if isinstance(arr, pa.Scalar):
        return pa.scalar(None if not arr.is_valid else arr.as_py().hex(), pa.string())
    arr = _arr(arr)
    if pa.types.is_fixed_size_binary(arr.type) or pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.binary())
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8)[start:end] if end > start else np.zeros(0, dtype=np.uint8)
    out = np.empty(2 * len(data), dtype=np.uint8)
    out[0::2] = _HEX[data >> 4]
    out[1::2] = _HEX[data & 15]
    new_offsets = ((offsets - start) * 2).astype(np.int32)
    result = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(new_offsets), pa.py_buffer(out)])
    if arr.null_count:
        result = pc.if_else(arr.is_null(), pa.scalar(None, pa.string()), result)
    return result


@dataclass(frozen=True)
class Condition:
    """A compiled OTTL condition for one context kind; :meth:`evaluate` is safe to call from
    many batches (no per-call state lives on the object)."""

    text: str
    context: str
    ast: Node = field(repr=False, compare=False)

    def evaluate(self, ctx: Context) -> np.ndarray:
        """A bool mask, True for the items the condition holds for."""
        if ctx.kind != self.context:
            raise OttlError(f"condition for the {self.context} context evaluated over a {ctx.kind} context")
        if len(ctx) == 0:
            return np.zeros(0, dtype=np.bool_)
        return _Evaluator(self.text, ctx).boolean(self.ast)


def compile_condition(text: str, context: str) -> Condition:
    """Parse and statically check ``text`` for the context kind ("span", "spanevent", "log",
    "metric", "datapoint", "resource" or "scope"); raises :class:`OttlError` with a position."""
    return Condition(text, context, parse_condition(text, context))
