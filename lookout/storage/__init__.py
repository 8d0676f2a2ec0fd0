"""Signal-agnostic storage: immutable Parquet blocks on a pyarrow filesystem (local disk or S3),
an in-memory catalog of committed blocks, compaction and retention.

Signals plug in by passing their sort keys, key and time columns and a sidecar builder; this
package never imports a signal package.
"""

from lookout.storage.blocks import BlockMeta, BlockStore, encode_key, make_block_id, validate_name
from lookout.storage.compaction import compact, dedupe_rows, merge_blocks
from lookout.storage.durations import parse_bytes, parse_duration
from lookout.storage.retention import apply_retention

__all__ = [
    "BlockMeta",
    "BlockStore",
    "apply_retention",
    "compact",
    "dedupe_rows",
    "encode_key",
    "make_block_id",
    "merge_blocks",
    "parse_bytes",
    "parse_duration",
    "validate_name",
]
