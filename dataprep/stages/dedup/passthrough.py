"""Shards that keep every row: copied byte for byte instead of decoded and re-encoded.

Re-encoding is most of the write phase (zstd alone is ~0.5 s CPU per 100 MB of text), and a
shard without a duplicate would come out of it as the very same rows. Its bytes are then the
same as a rewrite's when the input was written with the output's encoding, which only the
input's lineage can prove (a Parquet footer does not record the compression level, page
size or page checksums): its last stage must encode with the run's write options as given,
and its recorded config digest must be the runner's digest of that config with this run's
options. Anything else (another level, encryption, --mark-only) is rewritten as before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import Any

from dataprep.errors import checksum_mismatch
from dataprep.manifest import ShardEntry
from dataprep.shardio import WriteOptions
from dataprep.storage import BLOCK, StoragePath, file_checksum, spool_file

# stages whose shards are encoded with the run's write options as given; others (compress,
# encrypt, decrypt, tokenize) choose their own, so their digest proves nothing about the bytes
PLAIN_WRITERS = frozenset(
    {"shard", "clean", "score", "filter", "pii", "dedup", "partition", "resample", "rebalance"}
)


def same_writer(lineage: Sequence[Any], options: WriteOptions) -> bool:
    """Whether the input's shards were provably encoded with `options` (see the module)."""
    if not lineage or options.encryption is not None:
        return False
    last = lineage[-1]
    config = last.get("config")
    if last.get("stage") not in PLAIN_WRITERS or not isinstance(config, dict):
        return False
    # the runner's digest of the config as the lineage recorded it (its JSON dump)
    digest = options.config_digest(config)
    return bool(last.get("config_digest")) and digest == last.get("config_digest")


def copy_shard(
    source: StoragePath, target: StoragePath, entry: ShardEntry, partition: int | None = None
) -> ShardEntry:
    """Copy a shard's bytes to `target` (temporary name, then renamed or uploaded whole, as
    `ShardWriter` does), checked against its manifest entry: a changed byte stops the task,
    as a failed decode would. Recorded as a rewrite records it, with `partition`."""
    local = target.local()
    tmp = local.with_name(f".{local.name}.tmp-{os.getpid()}") if local else spool_file(target.name)
    try:
        if source.local() is not None:
            shutil.copyfile(str(source.local()), tmp)  # the kernel copies (sendfile)
        else:
            with source.open_stream() as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, BLOCK)
        # durable before its name exists, as ShardWriter's shards are
        if file_checksum(tmp, sync=local is not None) != entry.xxh3_128:
            raise checksum_mismatch(source.name)
        size = tmp.stat().st_size
        target.upload_from(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return ShardEntry(
        target.name, entry.rows, size, entry.xxh3_128, list(entry.row_groups), partition
    )
