"""What DP-SGD costs a training run: tokens/s with and without `--dp-epsilon`, same data.

Paired rounds of real `dataprep train` runs (2 gloo processes on CPU unless --nproc says
otherwise), each a fresh run directory; prints the median tokens/s of each, their ratio
(DP / plain) and the epsilon the DP runs spent.

    python benchmarks/bench_dp.py [--steps 60] [--rounds 3] [--model tiny] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import token_blocks  # noqa: E402


def _run(data: Path, out: Path, args: argparse.Namespace, dp: bool) -> dict:
    cmd = [sys.executable, "-m", "dataprep", "train", str(data), "--out", str(out)]
    cmd += ["--model", args.model, "--seq-len", "32", "--device", "cpu", "--num-workers", "0"]
    cmd += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    cmd += ["--nproc-per-node", str(args.nproc), "--checkpoint-every", str(args.steps), "--json"]
    if dp:
        cmd += ["--dp-epsilon", "8", "--dp-max-grad-norm", "1.0"]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = token_blocks(root, 32)
        plain, private, spent = [], [], []
        for n in range(args.rounds):
            plain.append(_run(data, root / f"plain{n}", args, dp=False)["tokens_per_s"])
            summary = _run(data, root / f"dp{n}", args, dp=True)
            private.append(summary["tokens_per_s"])
            spent.append(summary["dp_epsilon"])
    a, b = statistics.median(private), statistics.median(plain)
    print(f"model {args.model}, {args.nproc} processes, {args.steps} steps, {args.rounds} rounds")
    print(f"tokens/s  plain {b:,.0f}   DP-SGD {a:,.0f}   ratio (DP / plain) {a / b:.2f}")
    print(f"epsilon spent (target 8): median {statistics.median(spent):.3f}")


if __name__ == "__main__":
    main()
