"""What an OTTL condition reads: the values of one path for every item of a batch, by type.

OTLP values are dynamically typed (an attribute may hold a string in one span and an int in the
next), so a path is not one Arrow array but one array per type, each null where the item's value
has another type or is absent. Comparisons then follow OTTL's rules without a loop over rows: a
string literal compares with ``str``, a number with ``int`` and ``dbl``, ``nil`` with
``present``.

A :class:`Context` is the set of items a condition runs over (spans, span events, log records,
metrics, data points) together with their resource and scope. Two implementations exist: over
the nested OTLP request that ptars decodes (``lookout/pipeline/otlp_view.py``, used before the
log) and over the flat span table (``lookout/pipeline/span_table.py``, used by tail sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa


class PathError(ValueError):
    """A path the context does not have (``attributes`` on a metric, ``body`` on a span...)."""


@dataclass(slots=True)
class Values:
    """The values of one path for ``n`` items; each array has length ``n``.

    ``str``/``int``/``dbl``/``bool`` hold the value where it has that type and null elsewhere;
    ``present`` is True where the path has any value at all (also bytes, arrays, maps), so
    ``== nil`` is ``~present``. A field that always exists (a span's ``name``) is present
    everywhere.
    """

    n: int
    str: pa.Array  # pa.string()
    int: pa.Array  # pa.int64()
    dbl: pa.Array  # pa.float64()
    bool: pa.Array  # pa.bool_()
    present: np.ndarray  # dtype bool

    @classmethod
    def of(cls, n: int, *, str: pa.Array | None = None, int: pa.Array | None = None,
           dbl: pa.Array | None = None, bool: pa.Array | None = None,
           present: np.ndarray | None = None) -> Values:
        """Fill the missing types with all-null arrays; ``present`` defaults to "any typed
        value is non-null"."""
        arrays = {
            "str": str if str is not None else pa.nulls(n, pa.string()),
            "int": int if int is not None else pa.nulls(n, pa.int64()),
            "dbl": dbl if dbl is not None else pa.nulls(n, pa.float64()),
            "bool": bool if bool is not None else pa.nulls(n, pa.bool_()),
        }
        if present is None:
            present = np.zeros(n, dtype=np.bool_)
            for arr in arrays.values():
                present |= arr.is_valid().to_numpy(zero_copy_only=False)
        return cls(n, arrays["str"], arrays["int"], arrays["dbl"], arrays["bool"], present)


class Context(Protocol):
    """Items a condition is evaluated over.

    ``kind`` is the OTTL context name: "span", "spanevent", "log", "metric", "datapoint",
    "resource" or "scope". ``values`` resolves a path given as its field names and its map
    keys, e.g. ``attributes["http.route"]`` -> (("attributes",), ("http.route",)),
    ``resource.attributes["service.name"]`` -> (("resource", "attributes"), ("service.name",)),
    ``status.code`` -> (("status", "code"), ()), ``name`` -> (("name",), ()). A context
    prefix matching ``kind`` (``span.name``) has already been stripped by the caller; a prefix
    naming a parent (``resource.``, ``instrumentation_scope.``/``scope.``, ``span.`` from a
    spanevent, ``metric.`` from a datapoint) is the context's to resolve. Unknown paths raise
    :class:`PathError` naming the path.
    """

    kind: str

    def __len__(self) -> int: ...

    def values(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> Values: ...
