"""Key rotation cost: bytes written and seconds to move a dataset to new master keys.

    python benchmarks/bench_rotate.py --mb 1000 --shard-mb 128

Builds a plaintext dataset of ~MB megabytes of real text (licences, copyright files and man
pages from /usr/share, cycled; stored uncompressed so the files are as big as the text), encrypts
it with two column keys (`text`, `label`; `id` in the clear), then runs `dataprep keys rotate`
in this process and reports:

- bytes the rotation wrote, two ways: the sizes of the files it produced (new key material
  generation + manifest) and the process's write(2) byte count (/proc/self/io wchar), against
  the dataset's bytes (target < 1%);
- its wall seconds, and the seconds `encrypt` took to write the same dataset (what rotating by
  re-encrypting would cost at least: decrypt + encrypt writes the whole dataset twice);
- the oracle: every data file's sha256 before and after (must be identical) and the rows read
  with the new key equal to those read with the old one (first shard, all columns).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from dataprep import dataset
from dataprep.crypto import generate_key_file
from dataprep.dataset import ReadOptions, RollingShardWriter, WriteOptions
from dataprep.executors import make_executor
from dataprep.keys_rotate import rotate
from dataprep.layout import write_manifest
from dataprep.manifest import Manifest
from dataprep.runner import run_stage


def documents() -> list[tuple[str, str]]:
    """(label, text) of real documents on this machine."""
    docs = []
    for name in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(name):
            docs.append(("license", Path(name).read_text(errors="replace")))
    for name in sorted(glob.glob("/usr/share/doc/*/copyright"))[:2000]:
        docs.append(("copyright", Path(name).read_text(errors="replace")))
    for name in sorted(glob.glob("/usr/share/man/man*/*.gz"))[:3000]:
        try:
            docs.append(("man", gzip.decompress(Path(name).read_bytes()).decode(errors="replace")))
        except (OSError, EOFError):
            continue
    return [d for d in docs if d[1].strip()]


def build_plain(out: Path, megabytes: int, shard_mb: int) -> int:
    docs = documents()
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.string())])
    options = WriteOptions(
        compression="none", compression_level=None, row_group_rows=8192, use_dictionary=False
    )
    target, written, rows = megabytes << 20, 0, 0
    out.mkdir(parents=True)
    with RollingShardWriter(out, "part", schema, shard_bytes=shard_mb << 20, options=options) as w:
        batch: dict[str, list[str]] = {"id": [], "text": [], "label": []}
        for i, (label, text) in enumerate(itertools.cycle(docs)):
            batch["id"].append(f"doc-{i}")
            batch["text"].append(text)
            batch["label"].append(label)
            written += len(text)
            if len(batch["id"]) == 2048 or written >= target:
                w.write(pa.table(batch, schema=schema))
                rows += len(batch["id"])
                batch = {"id": [], "text": [], "label": []}
            if written >= target:
                break
    write_manifest(out, Manifest(schema, w.entries))
    return rows


def sha256s(root: Path) -> dict[str, str]:
    out = {}
    for shard in dataset.read_manifest(root).shards:
        h = hashlib.sha256()
        with open(root / shard.path, "rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
        out[shard.path] = h.hexdigest()
    return out


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1000, help="text megabytes (~dataset size)")
    parser.add_argument("--shard-mb", type=int, default=128)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-rotate-"))
    try:
        plain, enc = work / "plain", work / "enc"
        t = time.perf_counter()
        rows = build_plain(plain, args.mb, args.shard_mb)
        print(f"plaintext: {rows:,} rows in {time.perf_counter() - t:.1f} s")
        old, new = work / "old.keys", work / "new.keys"
        generate_key_file(old, ["text", "label"])
        generate_key_file(new, ["text", "label"])
        t = time.perf_counter()
        config = {"key_file": str(old), "columns": ["text:text", "label:label"]}
        run_stage("encrypt", config, enc, input_path=plain, executor=make_executor("local", 2))
        t_encrypt = time.perf_counter() - t
        shutil.rmtree(plain)
        manifest = dataset.read_manifest(enc)
        size = manifest.bytes
        before = sha256s(enc)
        first = enc / manifest.shards[0].path
        rows_old = ReadOptions(str(old), manifest.encryption).read_table(first)
        w0 = wchar()
        t = time.perf_counter()
        result = rotate(enc, old, new)
        t_rotate = time.perf_counter() - t
        w1 = wchar()
        after = dataset.read_manifest(enc)
        files = sorted((enc / after.encryption["key_material"]["dir"]).iterdir())
        produced = sum(f.stat().st_size for f in files) + (enc / ".manifest.json").stat().st_size
        same_files = sha256s(enc) == before
        rows_new = ReadOptions(str(new), after.encryption).read_table(first)
        report = {
            "dataset_bytes": size,
            "shards": len(manifest.shards),
            "rows": manifest.rows,
            "rotation_bytes_reported": result.bytes_written,
            "rotation_bytes_files": produced,
            "rotation_bytes_wchar": w1 - w0,
            "rotation_share_percent": round(100 * (w1 - w0) / size, 5),
            "rotation_seconds": round(t_rotate, 3),
            "encrypt_seconds": round(t_encrypt, 2),
            "data_files_identical": same_files,
            "new_key_reads_same_rows": rows_new.equals(rows_old),
        }
        print(json.dumps(report, indent=2))
        assert same_files and report["new_key_reads_same_rows"]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
