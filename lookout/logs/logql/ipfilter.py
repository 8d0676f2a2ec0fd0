"""``ip("...")`` matching for line filters and label filters.

A pattern is one address, a range ``a-b`` or a CIDR. Candidate addresses in a value are found
with one regex over the whole column (``pc.extract_regex`` / DuckDB ``regexp_extract_all``);
only the *distinct* candidate strings are checked against the range in Python via ``ipaddress``.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ParseError

IPV4 = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
IPV6 = r"[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}"
CANDIDATE = f"({IPV6}|{IPV4})"


class IpPattern:
    """A parsed ``ip()`` argument."""

    def __init__(self, text: str) -> None:
        self.text = text
        t = text.strip()
        try:
            if "/" in t:
                net = ipaddress.ip_network(t, strict=False)
                self.lo, self.hi = int(net.network_address), int(net.broadcast_address)
                self.version = net.version
            elif "-" in t:
                a, b = (ipaddress.ip_address(x.strip()) for x in t.split("-", 1))
                if a.version != b.version or int(a) > int(b):
                    raise ValueError(t)
                self.lo, self.hi, self.version = int(a), int(b), a.version
            else:
                a = ipaddress.ip_address(t)
                self.lo = self.hi = int(a)
                self.version = a.version
        except ValueError:
            raise ParseError(f"ip: invalid pattern: {text!r}") from None

    def contains(self, addr: str) -> bool:
        try:
            a = ipaddress.ip_address(addr)
        except ValueError:
            return False
        if a.version != self.version:
            return False
        return self.lo <= int(a) <= self.hi


def parse_ip_pattern(text: str) -> IpPattern:
    return IpPattern(text)


def match_column(col: pa.Array, pattern: str, duck) -> np.ndarray:
    """True where the value holds an address inside the pattern's range (nulls: False)."""
    pat = IpPattern(pattern)
    n = len(col)
    if n == 0:
        return np.zeros(0, dtype=bool)
    duck.register("ip_tbl", pa.table({"v": col}))
    try:
        lists = duck.sql(f"SELECT regexp_extract_all(v, '{CANDIDATE}') AS c FROM ip_tbl").to_arrow_table()["c"]
    finally:
        duck.unregister("ip_tbl")
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    out = np.zeros(n, dtype=bool)
    if len(flat) == 0:
        return out
    uniq = pc.unique(flat)
    hits = [u for u in uniq.to_pylist() if pat.contains(u)]
    if not hits:
        return out
    m = pc.is_in(flat, value_set=pa.array(hits, pa.string())).to_numpy(zero_copy_only=False)
    out[parents[m]] = True
    return out
