"""Retention: drop whole blocks whose newest row is older than the retention period."""

from __future__ import annotations

import logging
import time

from lookout.storage.blocks import BlockStore

__all__ = ["apply_retention"]

log = logging.getLogger("lookout.storage")


def apply_retention(
    store: BlockStore,
    *,
    retention_s: float,
    now_ns: int | None = None,
    tenant: str | None = None,
    signal: str | None = None,
) -> int:
    """Delete every block (of ``tenant``/``signal`` if given) whose ``max_time_ns`` is older than
    ``now - retention_s``; returns how many were deleted (0 when ``retention_s`` <= 0, which
    means "keep forever"). Superseded (hidden) blocks go first, so
    no replaced block ever reappears while its replacement is being removed."""
    if retention_s is None or retention_s <= 0:
        return 0  # retention disabled: keep everything
    now_ns = time.time_ns() if now_ns is None else int(now_ns)
    cutoff = now_ns - int(retention_s * 1_000_000_000)
    expired = [m for m in store.list_blocks(tenant, signal, include_replaced=True) if m.max_time_ns < cutoff]
    expired.sort(key=lambda m: (not store.is_replaced(m.block_id), m.level, m.min_time_ns))
    n = 0
    for m in expired:
        if store.get(m.block_id) is None:  # removed with a block that replaced it
            continue
        store.delete_block(m)
        n += 1
    if n:
        log.info("storage: retention removed %d blocks older than %.0fs", n, retention_s)
    return n
