"""Small helpers shared by tests: run the real CLI in a subprocess, read datasets back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq


@contextlib.contextmanager
def restored_env(keys: Iterable[str]) -> Iterator[None]:
    """Environment variables `keys` are put back as they were (or removed) on exit."""
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m dataprep ARGS` as a user would (`env`: variables to add); returns the
    finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "dataprep", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dataprep {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def cli_all(*calls: Iterable, check: bool = True) -> list[subprocess.CompletedProcess]:
    """`cli(*args)` for each of `calls` at the same time, results in order. For independent
    runs only: a `dataprep train` run keeps about one core busy (its launcher imports torch
    before its ranks do), so two of them overlap well on a 2-core CI machine."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda args: cli(*args, check=check), calls))


def manifest(path: Path) -> dict:
    return json.loads((Path(path) / ".manifest.json").read_text())


def column(path: Path, name: str) -> list:
    """One column of a dataset in manifest order, read with plain pyarrow."""
    values: list = []
    for shard in manifest(path)["shards"]:
        values += pq.read_table(Path(path) / shard["path"], columns=[name]).column(name).to_pylist()
    return values


def leftovers(out: Path) -> list[str]:
    """Hidden names in a dataset directory other than its side files (manifest, report,
    quarantine): temp files and resume state a finished stage must not leave behind."""
    from dataprep import dataset

    side = {dataset.MANIFEST, dataset.REPORT, dataset.QUARANTINE}
    return sorted(p.name for p in Path(out).glob(".*") if p.name not in side)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def logged_steps(out: Path) -> list[int]:
    """The steps a training run's metrics.jsonl holds, in file order (a cut last line skipped)."""
    path = out / "metrics.jsonl"
    steps = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                steps.append(json.loads(line)["step"])
    return steps


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, seconds: float = 240) -> None:
    """Poll until `condition()` holds; fail if `proc` ends first or time runs out."""
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline and proc.poll() is None, "the run ended or stalled"
        time.sleep(0.005)


def token_blocks(root: Path, seq_len: int) -> Path:
    """160 short documents sharded and tokenized into `seq_len` blocks: a tiny training set."""
    from dataprep.executors.local import LocalExecutor
    from dataprep.runner import run_stage

    docs = [json.dumps({"text": f"doc {i:05d} " + "abcdefghijklmnopqrstuv"}) for i in range(160)]
    (root / "in.jsonl").write_text("\n".join(docs) + "\n")
    one = LocalExecutor(1)
    run_stage("shard", {"shard_rows": 50}, root / "shards", inputs=[str(root / "in.jsonl")])
    tokenize = {"seq_len": seq_len}
    run_stage("tokenize", tokenize, root / "tok", input_path=root / "shards", executor=one)
    return root / "tok"


_KILLED_RUN = (
    "import json, sys; from dataprep.runner import run_stage; "
    "from dataprep.executors import make_executor; "
    "run_stage(sys.argv[1], json.loads(sys.argv[2]), sys.argv[4], input_path=sys.argv[3], "
    "executor=make_executor('local', workers=1))"
)


def killed_run(op: str, config: dict, src: Path, out: Path, after: int = 5) -> int:
    """Run stage `op` on one pool worker in a child process and SIGKILL its whole process group
    once `after` task records exist; returns how many records the killed run left behind."""
    import signal

    args = [sys.executable, "-c", _KILLED_RUN, op, json.dumps(config), str(src), str(out)]
    proc = subprocess.Popen(args, start_new_session=True)
    done = out / ".dataprep" / "tasks"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done.glob("*.json"))) < after:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(list(done.glob("*.json")))


def encrypted_copy(src: Path, tmp: Path) -> tuple[Path, Path]:
    """`src` encrypted under a fresh key file: (the encrypted dataset, the key file)."""
    from dataprep import crypto
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    keys = tmp / "keys.json"
    crypto.generate_key_file(keys)
    enc = tmp / "enc"
    inline = make_executor("local", workers=1)
    run_stage("encrypt", {"key_file": str(keys)}, enc, input_path=src, executor=inline)
    return enc, keys


COPYRIGHT_FILES = "/usr/share/doc/*/copyright"


def text_dataset(out: Path, shard_rows: int = 100) -> Path:
    """Real text: this machine's package copyright files (~800 documents, one per file, up to
    ~1 MB each), sharded through the CLI into shards of `shard_rows` rows."""
    cli("shard", COPYRIGHT_FILES, "--format", "text", "-o", out, "--shard-rows", shard_rows, "-q")
    return out


def shard_rows(path: Path, columns: list[str] | None = None) -> list[dict]:
    """Every row of a dataset in manifest order, read shard by shard with plain pyarrow."""
    rows: list[dict] = []
    for shard in manifest(path)["shards"]:
        rows += pq.read_table(Path(path) / shard["path"], columns=columns).to_pylist()
    return rows


def column_chunks(folder: Path, pattern: str = "*.parquet") -> Iterator:
    """Every column chunk's footer metadata of the shards in `folder`, shard by shard."""
    for shard in sorted(Path(folder).glob(pattern)):
        meta = pq.ParquetFile(shard).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                yield meta.row_group(g).column(c)


def string_array_with_padding(texts: list[str], padding: bytes):
    """`texts` as a StringArray whose data buffer goes on with `padding` after the last one:
    a reader that runs past the last string (Arrow 26's utf8_split_whitespace does) sees it."""
    import numpy as np
    import pyarrow as pa

    raw = [t.encode() for t in texts]
    offsets = np.zeros(len(raw) + 1, np.int32)
    np.cumsum([len(r) for r in raw], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw) + padding)]
    return pa.Array.from_buffers(pa.string(), len(raw), buffers)


def partition_pairs(part: Path, out: Path, partitions: int = 3) -> list[tuple[list, object]]:
    """A 1:1 stage's output `out` over the partitioned dataset `part` keeps each shard's
    partition tag and pNNNNN-part- name, shard for shard (asserted here); returns each pair's
    input ids and output table, for the stage's own checks on the rows."""
    from dataprep import dataset

    before, after = dataset.read_manifest(part).shards, dataset.read_manifest(out).shards
    assert {s.partition for s in before} == set(range(partitions))
    assert [s.partition for s in after] == [s.partition for s in before]
    pairs = []
    for old, new in zip(before, after, strict=True):
        assert new.path.startswith(f"p{old.partition:05d}-part-"), new.path
        ids = pq.read_table(part / old.path).column("id").to_pylist()
        pairs.append((ids, pq.read_table(out / new.path)))
    return pairs
