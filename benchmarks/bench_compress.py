"""Compression and encryption cost, ours next to the reference tools on the same bytes.

    PYTHONPATH=. python benchmarks/bench_compress.py                # a few minutes on 2 cores
    PYTHONPATH=. python benchmarks/bench_compress.py --docs 50000 --levels 1,3,9,19

Part 1, zstd level sweep. "Raw column bytes" are the uncompressed Parquet file of the corpus
(the page bytes Parquet's codec sees, same encoding and dictionaries). For each level:
  - ours/encode: pyarrow writing the in-memory table with zstd at that level (what the
    compress stage's writer does), MB/s over the uncompressed page bytes;
  - ours/stage: the whole `compress` stage on one worker (read + decode + re-encode + write);
  - zstd CLI (`zstd -T1 -L`) and python `zstandard` on the raw bytes.
Ratios are uncompressed / compressed; "ours/zstd" columns divide ours by the CLI's.

Part 2, encryption. Writing the same table with and without PME (AES-GCM, all columns,
encrypted footer); the extra time is set against raw AES-GCM (`cryptography`) over the same
(compressed) bytes. Reading encrypted vs plain shards through `ReadOptions.row_groups`, the
path the loader takes (decryption properties rebuilt from the manifest + key file). Medians of
`--repeat` runs; peak RSS of this process and of the zstd children.

`--clock cpu` (default) times CPU seconds of this process plus its children (the zstd CLI),
because wall time on a machine shared with other jobs swings by tens of percent between
identical runs; `--clock wall` gives wall-clock figures for a quiet machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from dataprep import crypto, dataset
from dataprep.dataset import ReadOptions
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.sample import generate_corpus
from dataprep.stages.shard import ShardConfig

MB = 1e6


def cpu_clock() -> float:
    """CPU seconds of this process (all threads) and of its finished children."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


CLOCKS: dict[str, Callable[[], float]] = {"cpu": cpu_clock, "wall": time.perf_counter}
clock = cpu_clock


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def interleaved(
    a: Callable[[], object], b: Callable[[], object], repeat: int
) -> tuple[list[float], list[float]]:
    """Times of a and b run alternately, so drift on a shared machine hits both alike."""
    ta, tb = [], []
    for _ in range(max(repeat, 5)):
        for fn, acc in ((a, ta), (b, tb)):
            t0 = clock()
            fn()
            acc.append(clock() - t0)
    return ta, tb


def parquet_bytes(table: pa.Table, **kwargs: object) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue().to_pybytes()


def uncompressed_size(data: bytes) -> int:
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    return sum(
        meta.row_group(r).column(c).total_uncompressed_size
        for r in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )


def bench_levels(
    table: pa.Table, shards: Path, work: Path, levels: list[int], repeat: int, page: int
) -> None:
    raw = parquet_bytes(table, compression="none")
    raw_path = work / "raw.parquet"
    raw_path.write_bytes(raw)
    page_bytes = uncompressed_size(raw)
    cli = shutil.which("zstd")
    print(f"zstd CLI: {_cli_version(cli)}; python zstandard {zstandard.__version__}")
    print(
        f"\nraw column bytes: {len(raw) / MB:.1f} MB uncompressed Parquet ({table.num_rows:,} rows)"
        f"; 'big pages' = {page / MB:.0f} MB data pages (compress --page-bytes; its default)"
    )
    head = (
        f"{'level':>5} | {'ours MB/s':>9} {'ratio':>5} | {'big pages':>9} {'ratio':>5} | "
        f"{'stage MB/s':>10} {'ratio':>5} | {'zstd CLI':>8} {'ratio':>5} | "
        f"{'zstandard':>9} {'ratio':>5} | {'ours/zstd MB/s':>14} {'ratio':>5} | "
        f"{'big/zstd MB/s':>13} {'ratio':>5}"
    )
    print(head)
    print("-" * len(head))
    inline = make_executor("local", workers=1)
    out: dict[str, bytes] = {}
    for level in levels:
        figures = {}
        for name, size in (("ours", None), ("big", page)):

            def encode(level: int = level, size: int | None = size, name: str = name) -> None:
                kwargs = {"data_page_size": size} if size else {}
                out[name] = parquet_bytes(
                    table, compression="zstd", compression_level=level, **kwargs
                )

            t = median_time(encode, repeat)
            figures[name] = (page_bytes / MB / t, uncompressed_size(out[name]) / len(out[name]))
        stage_rates, stage_ratio = [], 0.0
        for _ in range(repeat):
            t0 = clock()
            run = run_stage(
                "compress",
                {"codec": "zstd", "level": level, "page_bytes": page},
                work / f"stage-{level}",
                input_path=shards,
                executor=inline,
                force=True,
            )
            stage_rates.append(run.report["uncompressed_bytes"] / MB / (clock() - t0))
            stage_ratio = run.report["ratio"]
        if cli:
            target = work / "raw.parquet.zst"
            cmd = [cli, "-q", "-f", "-T1", f"-{level}", str(raw_path), "-o", str(target)]
            if level > 19:
                cmd.insert(1, "--ultra")
            t_cli = median_time(lambda cmd=cmd: subprocess.run(cmd, check=True), repeat)
            figures["cli"] = (len(raw) / MB / t_cli, len(raw) / target.stat().st_size)
        else:
            figures["cli"] = (float("nan"), float("nan"))
        zc = zstandard.ZstdCompressor(level=level)
        t_zs = median_time(lambda zc=zc: out.__setitem__("zs", zc.compress(raw)), repeat)
        figures["zs"] = (len(raw) / MB / t_zs, len(raw) / len(out["zs"]))
        (o_mbs, o_r), (b_mbs, b_r), (c_mbs, c_r) = figures["ours"], figures["big"], figures["cli"]
        print(
            f"{level:>5} | {o_mbs:>9.1f} {o_r:>5.2f} | {b_mbs:>9.1f} {b_r:>5.2f} | "
            f"{statistics.median(stage_rates):>10.1f} {stage_ratio:>5.2f} | "
            f"{c_mbs:>8.1f} {c_r:>5.2f} | {figures['zs'][0]:>9.1f} {figures['zs'][1]:>5.2f} | "
            f"{o_mbs / c_mbs:>14.2f} {o_r / c_r:>5.2f} | {b_mbs / c_mbs:>13.2f} {b_r / c_r:>5.2f}"
        )
    if not cli:
        print("zstd CLI not found: apt-get install -y zstd")


def _cli_version(cli: str | None) -> str:
    if not cli:
        return "not installed"
    return subprocess.run([cli, "--version"], capture_output=True, text=True).stdout.strip()


def bench_encryption(table: pa.Table, shards: Path, work: Path, repeat: int) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    keys = work / "keys.json"
    crypto.generate_key_file(keys)
    spec = crypto.EncryptionSpec(str(keys), key_material="internal")  # in-memory files
    out: dict[str, bytes] = {}

    def plain() -> None:
        out["plain"] = parquet_bytes(table, compression="zstd", compression_level=3)

    def encrypted() -> None:
        props = spec.properties(table.schema)  # rebuilt per file, as every task does
        out["enc"] = parquet_bytes(
            table, compression="zstd", compression_level=3, encryption_properties=props
        )

    plain(), encrypted()  # warm up (imports, allocator)
    times_plain, times_enc = interleaved(plain, encrypted, repeat)
    t_plain, t_enc = statistics.median(times_plain), statistics.median(times_enc)
    best_plain, best_enc = min(times_plain), min(times_enc)
    body = out["plain"]
    key = AESGCM.generate_key(256)
    chunk = 1 << 20  # PME encrypts page by page (~1 MiB pages)

    def raw_gcm() -> None:
        aead = AESGCM(key)
        for start in range(0, len(body), chunk):
            aead.encrypt(b"\0" * 12, body[start : start + chunk], None)

    t_gcm = median_time(raw_gcm, repeat)
    data_mb = len(body) / MB
    extra = max(t_enc - t_plain, 1e-9)
    print(f"\nencryption (zstd-3 Parquet, {data_mb:.1f} MB of compressed pages)")
    print(
        f"  write plain          {uncompressed_size(body) / MB / t_plain:8.1f} MB/s (uncompressed)"
    )
    print(f"  write encrypted      {uncompressed_size(body) / MB / t_enc:8.1f} MB/s (uncompressed)")
    print(
        f"  write overhead       {100 * (t_enc - t_plain) / t_plain:8.1f} % of medians, "
        f"{100 * (best_enc - best_plain) / best_plain:.1f} % of best runs"
    )
    if t_enc > t_plain:
        print(f"  PME marginal cost    {data_mb / extra:8.1f} MB/s of compressed bytes")
    else:
        print("  PME marginal cost    in the noise (encrypted write was not slower)")
    print(f"  raw AES-GCM          {data_mb / t_gcm:8.1f} MB/s on the same bytes (cryptography)")
    print(f"  file growth          {100 * (len(out['enc']) / len(body) - 1):8.2f} %")

    inline = make_executor("local", workers=1)
    enc_dir = work / "enc"
    t0 = clock()
    run_stage("encrypt", {"key_file": str(keys)}, enc_dir, input_path=shards, executor=inline)
    t_stage = clock() - t0
    manifest = dataset.read_manifest(enc_dir)
    print(f"  encrypt stage        {manifest.bytes / MB / t_stage:8.1f} MB/s of shard bytes")

    def read(root: Path, reader: ReadOptions) -> None:
        m = dataset.read_manifest(root)
        for shard in m.shards:
            for t in ReadOptions(reader.key_file, m.encryption).row_groups(root / shard.path):
                for batch in t.to_batches():
                    batch.column(1)

    read_plain = lambda: read(shards, ReadOptions())  # noqa: E731
    read_enc = lambda: read(enc_dir, ReadOptions(str(keys)))  # noqa: E731
    times_plain, times_enc = interleaved(read_plain, read_enc, repeat)
    t_read_plain, t_read_enc = statistics.median(times_plain), statistics.median(times_enc)
    best_read_plain, best_read_enc = min(times_plain), min(times_enc)
    rows = manifest.rows
    print(f"  read plain           {rows / t_read_plain:10,.0f} rows/s")
    print(f"  read encrypted       {rows / t_read_enc:10,.0f} rows/s")
    print(
        f"  read overhead        {100 * (t_read_enc / t_read_plain - 1):8.1f} % of medians, "
        f"{100 * (best_read_enc / best_read_plain - 1):.1f} % of best runs (target <= 15 %)"
        f" over {len(manifest.shards)} shards of ~{rows // max(len(manifest.shards), 1):,} rows"
    )
    # the same rows as one file: the per-byte cost without the fixed per-file cost
    props = crypto.decryption_properties(keys, spec.manifest(table.schema))

    def whole(data: bytes, **kwargs: object) -> None:
        file = pq.ParquetFile(pa.BufferReader(data), **kwargs)
        for i in range(file.metadata.num_row_groups):
            file.read_row_group(i)

    times_plain, times_enc = interleaved(
        lambda: whole(out["plain"]), lambda: whole(out["enc"], decryption_properties=props), repeat
    )
    t_p, t_e = statistics.median(times_plain), statistics.median(times_enc)
    print(
        f"  one {table.num_rows:,}-row file: {100 * (t_e / t_p - 1):.1f} % of medians, "
        f"{100 * (min(times_enc) / min(times_plain) - 1):.1f} % of best runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10000, help="documents to generate")
    parser.add_argument("--levels", default="1,3,9", help="zstd levels to sweep (19: slow)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--shard-rows", type=int, default=5000)
    parser.add_argument("--page-mb", type=float, default=8.388608, help="'big pages' size")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what to time")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    print(f"timing: {args.clock} seconds; medians of {args.repeat} runs")
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        work = Path(tmp)
        generate_corpus(work / "corpus", docs=args.docs, seed=0)
        shards = work / "shards"
        config = ShardConfig(shard_rows=args.shard_rows)
        run_stage("shard", config, shards, inputs=[str(work / "corpus")])
        table = dataset.read_rows(shards)
        bench_levels(table, shards, work, levels, args.repeat, int(args.page_mb * MB))
        bench_encryption(table, shards, work, args.repeat)
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"\npeak RSS: this process {me:.0f} MiB, largest child (zstd CLI / workers) {kids:.0f} MiB"
    )


if __name__ == "__main__":
    main()
