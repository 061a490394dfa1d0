"""GPU training throughput: `dataprep train` fed by the reader vs the same model on synthetic
tokens already on the GPU (zero data cost), in one run on one GPU.

Prints tokens/s, MFU and two data-wait shares of step time for each: the host's time blocked
in the loader, and the part of it the GPU sat idle for (the trainer fetches the next batch
while the GPU still runs the current step). Then the ratio ours / synthetic (target >= 0.95;
data wait < 2% of step time).

    python benchmarks/bench_train_gpu.py --model gpt2-124m --batch-size 16 --steps 60 [--compile]
    python benchmarks/bench_train_gpu.py --model tiny --steps 200
    python benchmarks/bench_train_gpu.py --model tiny --steps 20 --device cpu   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow as pa


def make_blocks(root: Path, rows: int, seq_len: int, vocab: int) -> Path:
    """Token blocks written as a dataset with the tokenize stage's schema and metadata."""
    from dataprep.dataset import Manifest, ShardWriter, write_manifest
    from dataprep.stages.tokenize import block_array, block_field
    from dataprep.tokenizer import TokenizerSpec

    out = root / "blocks"
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    width = seq_len + 1
    schema = pa.schema([block_field(width)])
    shards = []
    per_shard = 4096
    for i in range(0, rows, per_shard):
        n = min(per_shard, rows - i)
        ids = rng.integers(0, vocab, size=n * width, dtype=np.int32)
        writer = ShardWriter(out / f"part-{i // per_shard:05d}.parquet", schema)
        writer.write(pa.Table.from_arrays([block_array(ids, width)], schema=schema))
        shards.append(writer.close())
    spec = TokenizerSpec("bpe", vocab, eot_id=vocab - 2, pad_id=vocab - 1)
    metadata = {"tokenizer": spec.to_json(), "seq_len": seq_len, "mode": "pack"}
    write_manifest(out, Manifest(schema, shards, [], None, metadata))
    return out


def synthetic(args: argparse.Namespace, vocab: int) -> dict:
    """The same model and step with tokens already on the GPU: the ceiling."""
    import torch

    from dataprep.train.metrics import peak_flops
    from dataprep.train.model import GPT, shape_for

    cuda = args.device == "cuda"
    shape = shape_for(args.model, vocab, args.seq_len)
    model = GPT(shape).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=cuda)
    step = torch.compile(model) if args.compile else model
    x = torch.randint(0, vocab, (args.batch_size, args.seq_len + 1), device=args.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    times = []
    for i in range(args.steps):
        sync()
        t0 = time.perf_counter()
        with autocast:
            loss = step(x[:, :-1], targets=x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    tokens = args.batch_size * args.seq_len / statistics.median(times)
    peak = peak_flops(torch.cuda.get_device_name()) if cuda else None
    mfu = shape.flops_per_token() * tokens / peak if peak else None
    return {"tokens_per_s": tokens, "mfu": mfu, "data_wait_frac": 0.0, "data_stall_frac": 0.0}


def ours(args: argparse.Namespace, data: Path, out: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "dataprep",
        "train",
        str(data),
        "--out",
        str(out),
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--nproc-per-node",
        "1",
        "--device",
        args.device,
        "--checkpoint-every",
        str(10**9),
        "--num-workers",
        str(args.num_workers),
        "--json",
    ]
    if args.compile:
        cmd.append("--compile")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if r["step"] > args.warmup and "tokens_per_s" in r]
    step_time = sum(r["step_time_s"] for r in records)
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in records),
        "mfu": statistics.median(r.get("mfu") or 0 for r in records) or None,
        # shares of the whole run's step time, so a few long waits that a median hides count:
        # host time blocked in the loader, and the part of it the GPU sat idle for
        "data_wait_frac": sum(r["data_wait_s"] for r in records) / step_time,
        "data_stall_frac": sum(r["data_stall_s"] for r in records) / step_time,
        "gpu_mem_gb": max(r.get("gpu_mem_gb", 0) for r in records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt2-124m")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = args.batch_size * (args.steps + 5)
        data = make_blocks(Path(tmp), rows, args.seq_len, args.vocab)
        base = synthetic(args, args.vocab)
        if args.device == "cuda":
            import torch

            torch.cuda.empty_cache()  # hand the baseline's cached blocks back before ours runs
        got = ours(args, data, Path(tmp) / "run")
    print(f"{'run':10} {'tokens/s':>10} {'MFU':>6} {'loader wait':>12} {'GPU idle on data':>17}")
    for name, r in (("synthetic", base), ("dataprep", got)):
        mfu = f"{r['mfu']:.3f}" if r["mfu"] else "-"
        wait, stall = 100 * r["data_wait_frac"], 100 * r["data_stall_frac"]
        print(f"{name:10} {r['tokens_per_s']:10,.0f} {mfu:>6} {wait:11.2f}% {stall:16.2f}%")
    ratio = got["tokens_per_s"] / base["tokens_per_s"]
    print(f"ours / synthetic tokens/s: {ratio:.3f}")
    if args.json:
        runs = {"synthetic": base, "dataprep": got, "ours_over_synthetic": ratio}
        args.json.write_text(json.dumps({"args": vars(args) | {"json": None}, **runs}, indent=1))


if __name__ == "__main__":
    main()
