"""What a token-block encoding costs to store and to decode (the choice behind `tokenize`).

Writes the same BPE-like ids (Zipf-Mandelbrot over a 50,257-id vocabulary, as
bench_loader.py draws them) as `fixed_size_list<int32>` blocks with each codec, dictionary
on/off, and the column nullable or not, then decodes every file with one thread the way the
loader does (`iter_batches`, then the list's values as numpy). Prints bytes stored per raw
byte and CPU microseconds per block (best of --repeats; CPU time moves less than wall-clock
on a shared machine).

    python benchmarks/bench_token_encoding.py                    # 8192 blocks of 2048 ids
    python benchmarks/bench_token_encoding.py --blocks 16384 --width 1025
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_loader import _token_ids  # noqa: E402

# (codec, dictionary: True, False, or "split" = BYTE_STREAM_SPLIT and no dictionary: tokenize)
CHOICES = [
    ("zstd", True),
    ("zstd", False),
    ("zstd", "split"),
    ("lz4", True),
    ("lz4", False),
    ("lz4", "split"),
    ("none", True),
    ("none", False),
]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _table(ids: np.ndarray, width: int, nullable: bool) -> pa.Table:
    item = pa.field("item", pa.int32(), nullable=nullable)
    kind = pa.list_(item, width)
    blocks = pa.FixedSizeListArray.from_arrays(pa.array(ids), type=kind)
    return pa.Table.from_arrays([blocks], schema=pa.schema([pa.field("tokens", kind, nullable)]))


def _decode_us(path: Path, width: int, rows: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = _cpu()
        for batch in pq.ParquetFile(path).iter_batches(batch_size=512, use_threads=False):
            batch.column(0).values.to_numpy().reshape(-1, width)
        best = min(best, _cpu() - start)
    return 1e6 * best / rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--blocks", type=int, default=8192)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    ids = _token_ids(args.blocks * args.width, np.random.default_rng(0))
    raw = ids.nbytes
    print(f"{args.blocks} blocks of {args.width} ids ({raw / 1e6:.0f} MB raw), row groups 8192")
    print(
        f"{'column':<10} {'codec':<6} {'dictionary':<11} {'stored/raw':>10} {'decode us/block':>16}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for nullable in (True, False):
            table = _table(ids, args.width, nullable)
            for codec, dictionary in CHOICES:
                path = Path(tmp) / f"{codec}-{dictionary}-{nullable}.parquet"
                pq.write_table(
                    table,
                    path,
                    compression=codec,
                    compression_level=3 if codec == "zstd" else None,
                    use_dictionary=dictionary is True,
                    use_byte_stream_split=["tokens.list.element"]
                    if dictionary == "split"
                    else False,
                    row_group_size=8192,
                )
                size = path.stat().st_size / raw
                decode = _decode_us(path, args.width, args.blocks, args.repeats)
                label = "nullable" if nullable else "not null"
                print(f"{label:<10} {codec:<6} {str(dictionary):<11} {size:>10.3f} {decode:>16.2f}")


if __name__ == "__main__":
    main()
