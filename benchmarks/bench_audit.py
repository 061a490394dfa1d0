"""What the key-use audit log costs the encrypted reader, and what one record costs.

One generated text dataset, encrypted with `dataprep encrypt`, read in full through
`ShardDataset` (batch 256, in-process), in paired rounds: with the audit hook as shipped (the
process's record memo is cleared first, so every round writes and fsyncs its record as a fresh
process would) and with the hook replaced by a no-op, the order alternating each round.
Prints the medians of samples/s, the median of the per-round time ratios (target <= 1.02), and
the latency of one fsynced `audit.append` and of 4 processes appending at once.

    python benchmarks/bench_audit.py --rows 100000 --repeat 7
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_encrypted_read import make_dataset, read_all  # noqa: E402


@contextlib.contextmanager
def _no_op(*args: object, **kwargs: object):  # the hook with auditing switched off
    yield


def _round(enc: Path, keys: Path, audited: bool) -> tuple[float, float, int]:
    """(wall s, CPU s of this process's threads, rows) of one full read."""
    from dataprep import audit_use

    shipped = audit_use.use
    audit_use._SEEN.clear()  # as a new process: this round writes its record
    if not audited:
        audit_use.use = _no_op  # type: ignore[assignment]
    try:
        cpu = time.process_time()
        seconds, n = read_all(enc, keys)
        return seconds, time.process_time() - cpu, n
    finally:
        audit_use.use = shipped


def _fields(i: int) -> dict[str, object]:
    return {
        "time": "2026-01-01T00:00:00+00:00",
        "outcome": "ok",
        "action": "bench",
        "dataset": f"/bench/{i}",
        "key_ids": ["k"],
    }


def _appender(log: str, count: int) -> None:
    from dataprep import audit

    for i in range(count):
        audit.append(Path(log), _fields(i))


def append_costs(root: Path, count: int = 200, procs: int = 4) -> tuple[float, float]:
    """(median ms of one fsynced append, records/s with `procs` processes appending)."""
    from dataprep import audit

    log = root / "alone.jsonl"
    times = []
    for i in range(count):
        start = time.perf_counter()
        audit.append(log, _fields(i))
        times.append(time.perf_counter() - start)
    shared = root / "shared.jsonl"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_appender, args=(str(shared), count)) for _ in range(procs)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    assert audit.verify(shared)[0] == procs * count
    return statistics.median(times) * 1000, procs * count / seconds


def hook_cost(enc: Path, keys: Path, count: int = 50) -> float:
    """Median ms of the work one audited use adds: build the record, lock, append, fsync."""
    from dataprep import audit_use

    encryption = json.loads((enc / ".manifest.json").read_text())["encryption"]
    times = []
    for _ in range(count):
        audit_use._SEEN.clear()
        start = time.perf_counter()
        audit_use.record("decrypt", keys, enc, encryption, columns=["text"])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from dataprep import audit
    from dataprep.crypto import generate_key_file
    from dataprep.runner import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain = make_dataset(root, args.rows)
        keys = root / "keys.json"
        generate_key_file(keys)
        run_stage("encrypt", {"key_file": str(keys)}, root / "enc", input_path=plain)
        read_all(root / "enc", keys)  # warm the page cache
        times: dict[bool, list[float]] = {True: [], False: []}
        cpus: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.repeat):
            for audited in (True, False) if i % 2 == 0 else (False, True):
                seconds, cpu, n = _round(root / "enc", keys, audited)
                assert n == args.rows
                times[audited].append(seconds)
                cpus[audited].append(cpu)
        log = audit.log_path(keys)
        records = audit.verify(log)[0]
        hook_ms = hook_cost(root / "enc", keys)
        one_ms, many = append_costs(root)
    ratios = [a / b for a, b in zip(times[True], times[False], strict=True)]
    print("paired ratios:", " ".join(f"{r:.3f}" for r in ratios))
    for audited, label in ((False, "no audit"), (True, "audit")):
        med = statistics.median(times[audited])
        print(f"{label:9} {med:7.3f} s  {args.rows / med:12,.0f} samples/s")
    print(
        f"audit / no audit time (median of {args.repeat} paired rounds): "
        f"{statistics.median(ratios):.3f} (target <= 1.02)"
    )
    cpu_ratios = [a / b for a, b in zip(cpus[True], cpus[False], strict=True)]
    print(f"audit / no audit CPU time (same rounds): {statistics.median(cpu_ratios):.3f}")
    print(f"records written by the audited reads: {records}")
    plain_s = statistics.median(times[False])
    print(
        f"one audited use (record + lock + append + fsync): {hook_ms:.2f} ms = "
        f"{1 + hook_ms / 1000 / plain_s:.4f}x of one {args.rows:,}-row read"
    )
    print(f"one fsynced append: {one_ms:.2f} ms; 4 processes appending: {many:,.0f} records/s")


if __name__ == "__main__":
    main()
