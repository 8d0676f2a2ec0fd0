"""FNV-1a 64 over many trace ids at once, and the Collector's probabilistic threshold.

The Collector's ``probabilistic`` policy hashes ``salt ‖ trace id`` with Go's ``hash/fnv``
(FNV-1a, 64 bit) and samples when the hash is ``≤`` a threshold. Deciding a whole batch of
traces is 16 rounds of xor-and-multiply on a ``uint64`` column (numpy wraps on overflow, which is
exactly the modulo-2^64 arithmetic FNV wants); the salt prefix is hashed once in Python because
it is the same for every trace.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FNV_OFFSET", "FNV_PRIME", "fnv1a64", "fnv1a64_ids", "probabilistic_threshold"]

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
MAX_UINT64 = _MASK


def fnv1a64(data: bytes, state: int = FNV_OFFSET) -> int:
    """Plain FNV-1a 64 of ``data`` continuing from ``state`` (the reference, and the salt prefix)."""
    h = state
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK
    return h


def fnv1a64_ids(ids: np.ndarray, prefix: bytes = b"") -> np.ndarray:
    """FNV-1a 64 of ``prefix ‖ row`` for every row of ``ids`` (shape ``(m, k)``, dtype uint8).

    Returns ``uint64[m]``. The loop is over the k byte positions, never over rows.
    """
    ids = np.asarray(ids, dtype=np.uint8)
    h = np.full(ids.shape[0], fnv1a64(prefix), dtype=np.uint64)
    prime = np.uint64(FNV_PRIME)
    with np.errstate(over="ignore"):
        for j in range(ids.shape[1]):
            h ^= ids[:, j].astype(np.uint64)
            h *= prime
    return h


def probabilistic_threshold(percentage: float) -> int:
    """``floor(MaxUint64 × percentage/100)`` computed the way the Collector does.

    Go multiplies a 64-bit-precision ``big.Float`` holding ``MaxUint64`` by the float64 ratio,
    which rounds the exact product to 64 significant bits (nearest even) before ``Uint64()``
    truncates; we reproduce that rounding with integers so thresholds match bit for bit.
    Ratios ≥ 1 saturate at ``MaxUint64`` (everything sampled), ≤ 0 give 0.
    """
    ratio = float(percentage) / 100.0
    if not ratio > 0:
        return 0
    if ratio >= 1:
        return MAX_UINT64
    num, den = ratio.as_integer_ratio()  # den is a power of two
    n = MAX_UINT64 * num
    bits = n.bit_length()
    if bits > 64:
        shift = bits - 64
        q, r = divmod(n, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        n = q << shift
    return min(n // den, MAX_UINT64)
