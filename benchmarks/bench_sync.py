"""`dataprep sync` local -> S3 (a moto server on 127.0.0.1) against an `aws s3 sync`-style copy.

    PYTHONPATH=. python benchmarks/bench_sync.py                    # ~200 MB, 3 rounds
    PYTHONPATH=. python benchmarks/bench_sync.py --mb 50 --rounds 5 --workers 1,4,8
    PYTHONPATH=. python benchmarks/bench_sync.py --dst local      # local -> local, against cp

The dataset is real text (this machine's copyright files and licences, repeated with a copy
number until --mb of uncompressed Parquet), in ~8 MB shards written by dataprep's shard writer.

"theirs" is what `aws s3 sync` does for a fresh prefix: boto3 `upload_file` of every file with
the same number of files in flight as ours (a thread pool of W, each upload single-threaded),
no checks. "ours" is `sync_dataset(workers=W)`, in-process: hash while uploading, re-read
every object and hash it again, manifest last. Both write to a fresh prefix, alternating in
each round (paired, so the drift of a shared machine cancels); figures are medians, the ratio
is the median of the per-round ratios ours/theirs (MB/s; above 1 = ours faster).
A second table times a no-op rerun of ours (everything already there: one listing + record).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataprep import dataset  # noqa: E402
from dataprep.shardio import RollingShardWriter, WriteOptions  # noqa: E402
from dataprep.sync import sync_dataset  # noqa: E402

TEXTS = ["/usr/share/doc/*/copyright", "/usr/share/common-licenses/*"]


def build(out: Path, megabytes: int) -> int:
    """A dataset of real text, ~`megabytes` MB of shards; returns its bytes."""
    docs = []
    for pattern in TEXTS:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                docs.append(Path(path).read_text(errors="replace"))
    out.mkdir(parents=True)
    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    options = WriteOptions(compression="none", use_dictionary=False)
    budget, n = megabytes * 1_000_000, 0
    with RollingShardWriter(out, "part", schema, shard_bytes=8 << 20, options=options) as w:
        size = 0
        copy = 0
        while size < budget:
            texts = [f"copy {copy}: {d}" for d in docs]
            ids = list(range(n, n + len(texts)))
            w.write(pa.table({"id": ids, "text": texts}, schema=schema))
            n += len(texts)
            size += sum(len(t) for t in texts)
            copy += 1
    dataset.write_manifest(out, dataset.Manifest(schema, w.entries))
    return sum(e.bytes for e in w.entries)


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    return server, endpoint


def theirs(src: Path, root: str, prefix: str, workers: int, check: bool = False) -> float:
    """`aws s3 sync`-style: upload_file of each file, `workers` files at a time (`cp` of each
    file for a local `root`); `check` then reads each copy back and hashes it (what a separate
    verify pass after it would cost)."""
    import boto3
    import xxhash
    from boto3.s3.transfer import TransferConfig

    client = boto3.client("s3")
    config = TransferConfig(use_threads=False)
    files = [p for p in sorted(src.iterdir()) if p.is_file()]
    bucket = root.removeprefix("s3://")
    local = None if root.startswith("s3://") else Path(root) / prefix

    def one(path: Path) -> None:
        key = f"{prefix}/{path.name}"
        if local is None:
            client.upload_file(str(path), bucket, key, Config=config)
        else:
            local.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, local / path.name)
        if check:
            if local is None:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
            else:
                body = open(local / path.name, "rb")  # noqa: SIM115 (read to the end below)
            hasher = xxhash.xxh3_128()
            while block := body.read(8 << 20):
                hasher.update(block)
            body.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - started


def theirs_checked(src: Path, root: str, prefix: str, workers: int) -> float:
    return theirs(src, root, prefix, workers, check=True)


def ours(src: Path, root: str, prefix: str, workers: int) -> float:
    started = time.perf_counter()
    sync_dataset(src, f"{root}/{prefix}", workers=workers)
    return time.perf_counter() - started


RUNS = {"ours": ours, "theirs": theirs, "theirs_checked": theirs_checked}


def clear(root: str, prefix: str) -> None:
    if not root.startswith("s3://"):
        shutil.rmtree(Path(root) / prefix, ignore_errors=True)
        return
    import boto3

    client = boto3.client("s3")
    bucket = root.removeprefix("s3://")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    if listed:
        keys = [{"Key": o["Key"]} for o in listed]
        client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,8")
    parser.add_argument("--dst", choices=["s3", "local"], default="s3", help="where to copy to")
    args = parser.parse_args()
    import boto3

    server, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "ds"
            nbytes = build(src, args.mb)
            files = sum(1 for p in src.iterdir() if p.is_file())
            print(f"dataset: {nbytes / 1e6:.1f} MB in {files} files; moto at {endpoint}")
            boto3.client("s3").create_bucket(Bucket="bench")
            root = "s3://bench" if args.dst == "s3" else str(Path(tmp) / "copies")
            rows = []
            for workers in [int(w) for w in args.workers.split(",")]:
                times: dict[str, list[float]] = {k: [] for k in (*RUNS, "noop")}
                for r in range(args.rounds):
                    order = list(RUNS) if r % 2 == 0 else list(RUNS)[::-1]
                    for who in order:
                        prefix = f"{who}-{workers}-{r}"
                        times[who].append(RUNS[who](src, root, prefix, workers))
                        if who == "ours":
                            times["noop"].append(ours(src, root, prefix, workers))
                        clear(root, prefix)
                rows.append((workers, times))
            mb = nbytes / 1e6
            print(
                "\n| workers | ours MB/s | theirs MB/s | ours/theirs | theirs+verify MB/s "
                "| ours/(theirs+verify) | ours no-op rerun s |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for workers, times in rows:
                o, t, c = (statistics.median(times[k]) for k in RUNS)
                ratio, ratio_c = (
                    statistics.median(b / a for a, b in zip(times["ours"], times[k], strict=True))
                    for k in ("theirs", "theirs_checked")
                )
                noop = statistics.median(times["noop"])
                print(
                    f"| {workers} | {mb / o:.1f} | {mb / t:.1f} | {ratio:.2f}x | {mb / c:.1f} "
                    f"| {ratio_c:.2f}x | {noop:.3f} |"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
