"""What detecting corrupt shards costs: page checksums (CRC-32) and manifest file checksums.

    PYTHONPATH=. python benchmarks/bench_integrity.py             # ~3 minutes on 2 cores
    PYTHONPATH=. python benchmarks/bench_integrity.py --rounds 9 --token-rows 40000

Three measurements, each "with" against "without" the integrity checks, on the same data:

  - reader, token blocks: `ShardDataset(columns=["value"])` over blocks of 1024 int32 ids
    (BPE-like Zipf ids, written as `dataprep tokenize` writes them), batch 256, in-process;
  - reader, text: the same over ~1 KiB text rows;
  - stage: one `compress` task per shard (zstd level 3 -> 5), run in this process.

"with" reads shards written with page checksums and verifies them (and, in the stage, checks
each input's xxh3-128 against the manifest and writes checksums into its output); "without"
reads the same rows written without page checksums, with verification off: today's main.
The two variants alternate in each of --rounds rounds (paired, so the drift of a shared
machine cancels); figures are medians, and the ratio is the median of the per-round ratios
with / without. Wall-clock and CPU seconds (all threads of this process) are both shown.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataprep import dataset  # noqa: E402
from dataprep.dataset import (  # noqa: E402
    Manifest,
    ReadOptions,
    RollingShardWriter,
    WriteOptions,
    write_manifest,
)
from dataprep.loader import ShardDataset  # noqa: E402
from dataprep.loader import reader as loader_reader  # noqa: E402
from dataprep.stage import Task  # noqa: E402
from dataprep.stages.compress import CompressConfig, compress_task  # noqa: E402
from dataprep.stages.tokenize import block_array, block_field, block_write_options  # noqa: E402

WIDTH = 1024
SHARD_ROWS = 20_000


def _token_ids(n: int, rng: np.random.Generator, vocab: int = 50_257) -> np.ndarray:
    """Zipf-like ids over a GPT-2-sized vocabulary (as benchmarks/bench_loader.py draws them)."""
    weights = (np.arange(vocab) + 2.7) ** -1.07
    cdf = np.cumsum(weights / weights.sum())
    ids = np.random.default_rng(12345).permutation(vocab).astype(np.int32)
    return ids[np.minimum(np.searchsorted(cdf, rng.random(n)), vocab - 1)]


def _text(first: int, n: int, rng: np.random.Generator) -> list[str]:
    words = np.array(
        "the of and to in a is that for it as was with be by on not he this are or his from "
        "at which but have an they you were her she there one all we their been has".split()
    )
    picks = rng.integers(0, len(words), size=(n, 200))
    return [f"{first + i} " + " ".join(words[picks[i]])[:1000] for i in range(n)]


def write_dataset(root: Path, kind: str, rows: int, checksums: bool) -> Path:
    """Same rows (seeded) each time; `checksums` only switches page CRCs in the writer."""
    rng = np.random.default_rng(0)
    if kind == "tokens":
        schema = pa.schema([("id", pa.int64()), block_field(WIDTH).with_name("value")])
        options = block_write_options(WriteOptions(page_checksums=checksums), WIDTH)
    else:
        schema = pa.schema([("id", pa.int64()), ("value", pa.string())])
        options = WriteOptions(row_group_rows=8192, page_checksums=checksums)
    out = root / f"{kind}-{'crc' if checksums else 'plain'}"
    out.mkdir(parents=True)
    writer = RollingShardWriter(out, "part", schema, shard_rows=SHARD_ROWS, options=options)
    for first in range(0, rows, 5_000):
        n = min(5_000, rows - first)
        ids = pa.array(np.arange(first, first + n, dtype=np.int64))
        if kind == "tokens":
            col: pa.Array = block_array(_token_ids(n * WIDTH, rng), WIDTH)
        else:
            col = pa.array(_text(first, n, rng), pa.string())
        writer.write(pa.Table.from_arrays([ids, col], schema=schema))
    write_manifest(out, Manifest(schema, writer.close()))
    return out


def read_all(root: Path, verify: bool) -> int:
    """One pass of the reader over the `value` column; returns the rows seen."""
    loader_reader.VERIFY_PAGES = verify
    rows = 0
    for batch in ShardDataset(root, columns=["value"], batch_size=256):
        rows += len(batch["value"])
    loader_reader.VERIFY_PAGES = True
    return rows


def compress_all(root: Path, out: Path, verify: bool) -> int:
    """Every shard through `compress_task` (one worker's work: read, re-encode, write)."""
    manifest = dataset.read_manifest(root)
    config = CompressConfig(level=5)
    options = WriteOptions(compression_level=5, page_checksums=verify, page_bytes=8 << 20)
    rows = 0
    for i, shard in enumerate(manifest.shards):
        task = Task(
            phase="compress",
            index=i,
            inputs=(str(root / shard.path),),
            out_dir=str(out),
            work_dir=str(out / ".dataprep"),
            config=config,
            extra=(options, shard.xxh3_128 if verify else None),
            read_options=ReadOptions(verify_pages=verify),
        )
        rows += compress_task(task).counts["rows"]
    return rows


def paired(
    label: str, without: Callable[[], int], with_: Callable[[], int], rounds: int
) -> dict[str, float]:
    """Alternate the two (order flipped every round); medians and per-round ratios."""
    times: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
    for r in range(rounds):
        order = [("without", without), ("with", with_)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - w0, time.process_time() - c0))
    wall = [w / o for (w, _), (o, _) in zip(times["with"], times["without"], strict=True)]
    cpu = [w / o for (_, w), (_, o) in zip(times["with"], times["without"], strict=True)]
    result = {
        "without_s": statistics.median(t for t, _ in times["without"]),
        "with_s": statistics.median(t for t, _ in times["with"]),
        "without_cpu_s": statistics.median(c for _, c in times["without"]),
        "with_cpu_s": statistics.median(c for _, c in times["with"]),
        "wall_ratio": statistics.median(wall),
        "cpu_ratio": statistics.median(cpu),
    }
    print(
        f"{label:<22} wall {result['without_s']:7.3f} -> {result['with_s']:7.3f} s, "
        f"cpu {result['without_cpu_s']:7.3f} -> {result['with_cpu_s']:7.3f} s;  "
        f"with/without: wall {result['wall_ratio']:.3f}, cpu {result['cpu_ratio']:.3f}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token-rows", type=int, default=20_000, help="blocks of 1024 ids")
    parser.add_argument("--text-rows", type=int, default=100_000, help="~1 KiB text rows")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-integrity-") as tmp:
        work = Path(tmp)
        data = {
            (kind, crc): write_dataset(work, kind, rows, crc)
            for kind, rows in (("tokens", args.token_rows), ("text", args.text_rows))
            for crc in (False, True)
        }
        for (kind, crc), root in data.items():
            size = dataset.read_manifest(root).bytes
            print(f"{kind:<7} {'with' if crc else 'without'} page checksums: {size / 1e6:.1f} MB")
        for kind in ("tokens", "text"):
            paired(
                f"reader, {kind}",
                lambda kind=kind: read_all(data[kind, False], verify=False),
                lambda kind=kind: read_all(data[kind, True], verify=True),
                args.rounds,
            )

        def stage(verify: bool) -> int:
            out = work / "out"
            out.mkdir()
            try:
                return compress_all(data["text", verify], out, verify)
            finally:
                shutil.rmtree(out)

        paired("compress stage, text", lambda: stage(False), lambda: stage(True), args.rounds)


if __name__ == "__main__":
    main()
