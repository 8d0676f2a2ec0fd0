"""The snappy block format's length header: how large a body says it will be once decompressed.

Read before decompressing, so a small request that would inflate past a limit is refused without
allocating it (remote write bodies are snappy blocks)."""

from __future__ import annotations


def declared_length(body: bytes) -> int:
    """The uncompressed length in the leading varint; ValueError names a bad or missing header."""
    length, shift = 0, 0
    for pos, byte in enumerate(body[:10]):
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return length
        if pos == 9:
            raise ValueError("bad length header")
    raise ValueError("empty or truncated length header")
