"""Block metadata (``meta.json``), deterministic block ids, and order-preserving key encoding.

The pieces of the block format that are pure data: no I/O here, so readers (queriers, the
compactor, a future bucket index) can share them without the store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import xxhash

SCHEMA_VERSION = 1
TMP_SUFFIX = ".tmp"  # in-progress files; never a valid tenant, signal or block name
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# --------------------------------------------------------------------------------------------
# metadata


@dataclass
class BlockMeta:
    """The content of ``meta.json``: everything needed to select a block without opening it.

    ``files[i]`` is ``{"name", "rows", "bytes", "row_groups": [{"rows", "min_key_hex",
    "max_key_hex", "min_time", "max_time"}]}``; keys are encoded with :func:`encode_key` so that
    hex strings compare in the same order as the key values. ``path`` is the block directory
    relative to the store root."""

    block_id: str
    tenant: str
    signal: str
    level: int
    min_time_ns: int
    max_time_ns: int
    rows: int
    stored_bytes: int
    raw_bytes: int
    created_at: str
    source: dict[str, Any]
    replaces: list[str]
    files: list[dict[str, Any]]
    sidecars: list[str]
    path: str
    schema_version: int = SCHEMA_VERSION
    sort_keys: list[list[str]] = field(default_factory=list)
    key_column: str = ""
    time_column: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockMeta:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = dict(kwargs.get("extra") or {})
        # Keep unknown keys (written by a newer version) instead of dropping them silently.
        for k, v in d.items():
            if k not in known:
                extra.setdefault(k, v)
        kwargs["extra"] = extra
        kwargs.setdefault("replaces", [])
        kwargs.setdefault("sidecars", [])
        kwargs.setdefault("files", [])
        kwargs.setdefault("source", {})
        return cls(**kwargs)

    @classmethod
    def from_json(cls, data: str | bytes | dict[str, Any]) -> BlockMeta:
        if isinstance(data, dict):
            return cls.from_dict(data)
        return cls.from_dict(json.loads(data))

    @property
    def data_file_names(self) -> list[str]:
        return [f["name"] for f in self.files]


# --------------------------------------------------------------------------------------------
# helpers


def validate_name(value: str, what: str = "tenant") -> str:
    """A tenant or signal name that is safe to use as one path component."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid {what} name {value!r}: must be a non-empty string")
    if value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError(f"invalid {what} name {value!r}: must not contain '/', '\\', NUL or be '.'/'..'")
    if value.endswith(TMP_SUFFIX):
        raise ValueError(f"invalid {what} name {value!r}: must not end with {TMP_SUFFIX!r}")
    if len(value.encode()) > 200:
        raise ValueError(f"invalid {what} name {value!r}: longer than 200 bytes")
    return value


def _crockford(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def make_block_id(tenant: str, signal: str, level: int, source: dict[str, Any], min_time_ns: int) -> str:
    """A deterministic, time-sortable ULID-like id (26 Crockford base32 characters).

    The 48-bit time part is ``min_time_ns`` in milliseconds; the 80-bit rest is the first 80 bits of
    ``xxh3_128(tenant|signal|level|<canonical JSON of source>)``. The source holds the log offsets
    (and partition/topic if any) or the sorted compaction inputs, so re-flushing the same log
    range, or re-running the same compaction, produces the same id."""
    ms = max(0, min(int(min_time_ns) // 1_000_000, (1 << 48) - 1))
    src = json.dumps(source, sort_keys=True, separators=(",", ":"), default=str)
    digest = xxhash.xxh3_128_intdigest(f"{tenant}|{signal}|{int(level)}|{src}".encode())
    rand = digest >> 48  # first (most significant) 80 of 128 bits
    return _crockford(ms, 10) + _crockford(rand, 16)


def encode_key(value: Any, type_: pa.DataType) -> str | None:
    """Hex encoding of a key value whose lexicographic order equals the value order.

    binary / fixed-size binary: the bytes; strings: UTF-8 bytes; integers (and temporal types as
    their integer value): fixed-width big-endian, with the sign bit flipped for signed types.
    ``None`` for a null."""
    if value is None:
        return None
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_) or pa.types.is_fixed_size_binary(type_):
        return bytes(value).hex()
    if pa.types.is_binary_view(type_):
        return bytes(value).hex()
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return str(value).encode().hex()
    if pa.types.is_integer(type_) or pa.types.is_temporal(type_):
        bits = type_.bit_width
        v = int(value)
        if not pa.types.is_unsigned_integer(type_):
            v += 1 << (bits - 1)
        return v.to_bytes(bits // 8, "big").hex()
    raise TypeError(f"unsupported key column type {type_}")


