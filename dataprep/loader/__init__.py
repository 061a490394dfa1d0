"""The torch reader: stream Parquet shards into training, deterministic and exactly resumable.

    from dataprep.loader import ShardDataset, make_dataloader
    ds = ShardDataset("work/out", columns=["tokens"], batch_size=64, shuffle=True, seed=17)
    dl = make_dataloader(ds, num_workers=2)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for batch in dl: ...           # dict: column -> tensor (list for strings)
    state = dl.state_dict()            # a few integers, for the checkpoint
    dl.load_state_dict(state)          # on a fresh loader, any world size / worker count

Modules: `index` (units and row counts), `order` (the epoch's global order), `split` (a rank's
share), `reader` (shard I/O and prefetch), `batch` (Arrow -> tensors), `resume` (the resume
protocol: `ReadPosition`), `dataset`, `mix`, `dataloader`.
"""

from typing import Any

from dataprep.loader.dataset import ShardDataset
from dataprep.loader.resume import ReadPosition

try:
    from dataprep.loader.dataloader import ShardDataLoader, make_dataloader
except ImportError:  # no torch: ShardDataset is still a plain iterable of numpy batches
    ShardDataLoader = None  # type: ignore[assignment,misc]

    def make_dataloader(ds: Any, num_workers: int = 0, **dataloader_kwargs: Any) -> Any:  # type: ignore[misc]
        from dataprep.errors import DataprepError

        raise DataprepError("make_dataloader needs torch; install dataprep[torch]")


__all__ = ["ReadPosition", "ShardDataLoader", "ShardDataset", "make_dataloader"]
