"""datatrove's four MinHash stages on the benchmark corpus; run by bench_dedup.py with the
interpreter of a separate venv (datatrove needs xxhash<4, see /work/shared/PEERS.md):

    python -m venv --system-site-packages /work/venvs/datatrove
    /work/venvs/datatrove/bin/pip install datatrove orjson "xxhash<4"
    python benchmarks/bench_dedup.py --datatrove-python /work/venvs/datatrove/bin/python

Prints one line `RESULT {json}` with seconds, removed row numbers and peak RSS.
A whitespace word tokenizer stands in for the spaCy English one (as PEERS.md suggests);
16 buckets x 8 hashes = 128 permutations, 5-word shingles, datatrove's own text
simplification; ParquetReader over the same shards ours reads.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.hashing import HashConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality_datatrove import word_tokenizer  # noqa: E402


def _vm_hwm_mb() -> float:
    """Peak RSS of this process (VmHWM is not inherited through fork, unlike ru_maxrss)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(root: Path, workers: int) -> None:
    shards = root / "shards"
    tasks = len(list(shards.glob("*.parquet")))
    work = root / f"datatrove-{workers}"
    shutil.rmtree(work, ignore_errors=True)
    config = MinhashConfig(
        hash_config=HashConfig(precision=64), num_buckets=16, hashes_per_bucket=8, n_grams=5
    )

    def reader() -> ParquetReader:
        return ParquetReader(str(shards), glob_pattern="*.parquet", text_key="text", id_key="id")

    logs = str(work / "logs")
    t0 = time.perf_counter()
    s1 = LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupSignature(
                str(work / "sigs"), config=config, language=word_tokenizer("whitespace")
            ),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=f"{logs}/1",
    )
    s2 = LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
        tasks=config.num_buckets,
        workers=workers,
        logging_dir=f"{logs}/2",
        depends=s1,
    )
    s3 = LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config)],
        tasks=1,
        logging_dir=f"{logs}/3",
        depends=s2,
    )
    s4 = LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupFilter(
                str(work / "remove"), exclusion_writer=JsonlWriter(str(work / "removed"))
            ),
            JsonlWriter(str(work / "kept")),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=f"{logs}/4",
        depends=s3,
    )
    s4.run()
    seconds = time.perf_counter() - t0
    removed = []
    import gzip

    for path in sorted((work / "removed").glob("*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            removed.extend(int(json.loads(line)["id"]) for line in f)
    rss = _vm_hwm_mb()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": seconds,
                "removed": sorted(removed),
                "bands": "16x8",
                "rss_mb": rss,
                "rss_children_mb": kids if workers > 1 else 0,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
