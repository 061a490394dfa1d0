"""One training process (one rank): DDP over the reader's batches, with exact resume.

Everything a resumed run needs is in the checkpoint (model, optimizer, scheduler, step, RNG,
and the reader's few-integer state), so stopping at step N and resuming gives the same
parameters as never stopping (bit for bit on CPU), and a different process count continues
the same epoch with no sample repeated or lost.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import xxhash
from torch.nn.parallel import DistributedDataParallel as DDP

from dataprep.errors import DataprepError
from dataprep.loader import ReadPosition, ShardDataset, make_dataloader
from dataprep.train import checkpoint, stops
from dataprep.train.config import TrainConfig
from dataprep.train.data import DataFacts, inspect_data
from dataprep.train.metrics import MetricsLog, drop_after, peak_flops
from dataprep.train.model import GPT, shape_for
from dataprep.train.user_error import USER_ERROR_EXIT, report, reported


class RunRefused(DataprepError):
    """Raised on every rank at once, after a collective decision: the worker returns the
    message instead of crashing, and the launcher stops with it as one sentence."""


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise DataprepError("--device cuda was asked for, but no CUDA GPU is visible")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.facts: DataFacts = inspect_data(cfg)
        self.is_cuda = self.device.type == "cuda"

    # --- setup -------------------------------------------------------------------------------

    def build(self) -> None:
        cfg = self.cfg
        shape = shape_for(
            cfg.model,
            self.facts.vocab_size,
            self.facts.seq_len,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            d_model=cfg.d_model,
            n_classes=len(self.facts.labels),
        )
        self.shape = shape
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model = GPT(shape).to(self.device)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=self.is_cuda)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.dataset = ShardDataset(
            cfg.data,
            columns=list(self.facts.columns),
            batch_size=cfg.batch_size,
            shuffle=True,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world,
            equal_batches=True,
            drop_last=True,
            key_file=cfg.key_file,
        )
        self.loader = make_dataloader(
            self.dataset, num_workers=cfg.num_workers, pin_memory=self.is_cuda
        )
        self.step, self.epoch = 0, 0
        found = self._resume_point() if cfg.resume else None
        rng = None
        if found is not None:
            self._check_same_order(found)
            self.model.load_state_dict(found.states["model"])
            self.optimizer.load_state_dict(found.states["optimizer"])
            self.scheduler.load_state_dict(found.states["scheduler"])
            self.step = int(found.train_state["step"])
            try:
                self.loader.load_state_dict(found.train_state["reader"])
            except DataprepError as exc:
                raise DataprepError(
                    f"cannot resume {self.out} from step {self.step}: {exc}, or pass a new "
                    "--out to start fresh"
                ) from None
            self.epoch = int(found.train_state["reader"]["epoch"])
            self.resumed_from = str(found.path)
            rng = found.rng
        else:
            self.resumed_from = None
        if rng is not None:
            checkpoint.set_rng_state(rng)
        else:
            torch.manual_seed(cfg.seed * 1000 + self.rank + self.step)
        self.ddp: Any = self.model
        if self.world > 1:
            self.ddp = DDP(self.model, device_ids=[self.device.index] if self.is_cuda else None)
            if cfg.grad_compression != "none":
                from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

                hook = getattr(default_hooks, f"{cfg.grad_compression}_compress_hook")
                self.ddp.register_comm_hook(None, hook)
        if cfg.compile:
            self.ddp = torch.compile(self.ddp)

    def _check_same_order(self, found: checkpoint.Loaded) -> None:
        """The settings that fix the data order must be those the run was started with:
        otherwise resuming is refused the same way on every try, so say both ways out."""
        saved = found.train_state.get("config") or {}
        step = found.train_state.get("step")
        for key in ("batch_size", "seed"):
            then, now = saved.get(key), getattr(self.cfg, key)
            if then is not None and then != now:
                flag = "--" + key.replace("_", "-")
                raise DataprepError(
                    f"cannot resume {self.out} from step {step} with {flag} {now}: the run "
                    f"was started with {flag} {then}, which fixes its data order; pass "
                    f"{flag} {then} to continue it, or a new --out to start fresh"
                )

    def _resume_point(self) -> checkpoint.Loaded | None:
        """Rank 0 picks the newest checkpoint that verifies and loads, says why it skipped
        newer ones, and broadcasts its step: every rank resumes from the same checkpoint."""
        choice = checkpoint.choose(self.out) if self.rank == 0 else None
        decided = torch.zeros(1, dtype=torch.long, device=self.device)  # 0: start fresh
        if choice is not None:
            for line in choice.report():
                self._warn(line)
            if choice.loaded is not None:
                decided[0] = int(choice.loaded.train_state["step"])
            elif choice.damaged:
                decided[0] = -1  # all damaged: a user decision, not a silent fresh start
        if self.world > 1:
            dist.broadcast(decided, 0)
        step = int(decided.item())
        if step < 0:
            folder = self.out / "checkpoints"
            detail = ""
            if choice is not None:
                name, why = choice.damaged[0]
                detail = f" (newest, {name}: {why})"
            raise RunRefused(
                f"no checkpoint in {folder} can be resumed, all are damaged{detail}; start "
                "fresh with a new --out, or remove the damaged checkpoints to start over"
            )
        if step == 0:
            return None
        if choice is not None:
            return choice.loaded
        try:
            return checkpoint.read(self.out / "checkpoints" / f"step-{step:08d}", self.rank)
        except checkpoint.Damaged as exc:  # verified by rank 0 a moment ago: changed since
            raise DataprepError(f"checkpoint step-{step:08d} changed as it loaded: {exc}") from None

    def _lr_factor(self, index: int) -> float:
        """Linear warmup then cosine to min_lr_ratio; `index` is the number of steps done."""
        step = index + 1
        warmup, horizon = self.cfg.warmup(), self.cfg.horizon()
        if warmup and step <= warmup:
            return step / warmup
        progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
        floor = self.cfg.min_lr_ratio
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    # --- data --------------------------------------------------------------------------------

    def batches(self) -> Iterator[dict[str, Any]]:
        """Batches forever, epoch after epoch, starting at the resumed position."""
        while True:
            self.dataset.set_epoch(self.epoch)
            fresh = self.dataset.next_pass().start == 0
            yielded = 0
            for batch in self.loader:
                yielded += 1
                yield batch
            if fresh and yielded == 0:  # equal batches: every rank finds none at once
                raise RunRefused(
                    f"{self.cfg.data} has too few blocks for batch size {self.cfg.batch_size} "
                    f"on {self.world} processes; lower --batch-size"
                )
            self.epoch += 1

    def _fetch(self, stream: Iterator[dict[str, Any]]) -> _Fetched:
        """The next batch, timed on the host and, bracketed by two events, on the GPU."""
        marks = None
        if self.is_cuda:
            marks = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            marks[0].record()
        t0 = time.perf_counter()
        batch = next(stream)
        wait = time.perf_counter() - t0
        if marks is not None:
            marks[1].record()
        return _Fetched(batch, wait, marks)

    # --- the step ----------------------------------------------------------------------------

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        tokens = batch["tokens"].to(self.device, non_blocking=True).long()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.is_cuda else nullcontext()
        with autocast:
            if not self.facts.labels:
                return self.ddp(tokens[:, :-1], targets=tokens[:, 1:])
            lengths = batch.get("length")
            lengths = lengths.to(self.device).long() if lengths is not None else None
            logits = self.ddp(tokens, lengths).float()
        index = {name: i for i, name in enumerate(self.facts.labels)}
        labels = torch.tensor(
            [index[str(v)] for v in batch[self.cfg.label_col]], device=self.device
        )
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        weight = batch.get("sample_weight")
        if weight is not None:
            per_sample = per_sample * weight.to(self.device).float()
        return per_sample.mean()

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        self.build()
        resumed = self.step if cfg.resume else None  # --no-resume: keep any earlier log
        with _writable(self.out / "metrics.jsonl"):
            metrics = MetricsLog(self.out, self.rank == 0, resumed_step=resumed)
        stream = self.batches()
        trace = None
        if cfg.trace_samples:  # like metrics: steps after the checkpoint are trained again
            trace_path = self.out / f"samples-rank{self.rank}.txt"
            with _writable(trace_path):
                if resumed is not None:
                    drop_after(trace_path, resumed, lambda line: int(line.split(maxsplit=1)[0]))
                trace = open(trace_path, "a")
        tokens_per_step = cfg.batch_size * self.facts.seq_len * cfg.grad_accum * self.world
        peak = peak_flops(torch.cuda.get_device_name(self.device)) if self.is_cuda else None
        started, first_step, last_loss = time.perf_counter(), self.step, float("nan")
        if self.step >= cfg.steps:  # finished before: report its last logged loss
            last_loss = _last_loss(self.out / "metrics.jsonl", self.step)
        stopping = False
        self._say(
            f"training {self.shape.n_layer}x{self.shape.d_model} on {self.world} "
            f"process(es), {self.device.type}, from step {self.step}"
            + (f" (resumed from {self.resumed_from})" if self.resumed_from else "")
        )
        t0 = time.perf_counter()
        ahead = self._fetch(stream) if self.step < cfg.steps else None
        during = [ahead] if ahead else []  # the fetches made inside this step's wall time
        while ahead is not None:
            total = torch.zeros(2, device=self.device)
            self.ddp.train()
            for micro in range(cfg.grad_accum):
                if micro:
                    during.append(self._fetch(stream))
                batch = during[-1].batch if micro else ahead.batch
                if trace is not None:
                    trace.write(f"{self.step + 1} {' '.join(_fingerprints(batch))}\n")
                sync = micro == cfg.grad_accum - 1 or self.world == 1
                with nullcontext() if sync else self.ddp.no_sync():
                    loss = self.loss(batch)
                    (loss / cfg.grad_accum).backward()
                total[0] += loss.detach().float() / cfg.grad_accum
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            lr = self.scheduler.get_last_lr()[0]  # what this step used; stepping sets the next
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            position = self.loader.position()  # what a checkpoint after this step records
            # the next step's first batch, fetched while the GPU still works on this one
            ahead = self._fetch(stream) if self.step < cfg.steps else None
            during += [ahead] if ahead else []
            total[1] = float(self.stop_requested)
            if self.world > 1:
                dist.all_reduce(total)
            last_loss = total[0].item() / self.world
            if self.is_cuda:
                torch.cuda.synchronize()
            step_time = time.perf_counter() - t0
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                wait = sum(f.wait_s for f in during)
                stall = sum(f.stall_s() for f in during)
                record = {
                    "step": self.step,
                    "loss": last_loss,
                    "lr": lr,
                    "epoch": self.epoch,
                    "tokens_per_s": tokens_per_step / step_time,
                    "step_time_s": step_time,
                    "data_wait_s": wait,
                    "data_wait_frac": wait / step_time,
                    "data_stall_s": stall,
                    "data_stall_frac": stall / step_time,
                }
                if self.is_cuda:
                    record["gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                    if peak:
                        flops = self.shape.flops_per_token() * tokens_per_step
                        record["mfu"] = flops / step_time / (peak * self.world)
                metrics.log(record)
                self._progress(record)
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                metrics.log({"step": self.step, "eval_loss": self.evaluate()})
            stopping = total[1].item() > 0
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or stopping:
                self.save(position)
            if stopping:  # the launcher says so, once, and exits with its own code
                break
            t0, during = time.perf_counter(), []
        metrics.close()
        if trace is not None:
            trace.close()
        seconds = time.perf_counter() - started
        done = self.step - first_step
        status = "trained" if done else "complete"
        summary = {
            "status": "stopped" if stopping and self.step < cfg.steps else status,
            "step": self.step,
            "loss": last_loss,
            "seconds": round(seconds, 2),
            "tokens_per_s": done * tokens_per_step / seconds if seconds and done else 0.0,
            "world_size": self.world,
            "checkpoint": str(checkpoint.latest(self.out)),
            "stopped_by": stops.name() if stopping and self.step < cfg.steps else None,
        }
        return summary

    def evaluate(self) -> float:
        cfg = self.cfg
        assert cfg.eval_dir is not None
        data = ShardDataset(
            cfg.eval_dir,
            columns=list(self.facts.columns),
            batch_size=cfg.batch_size,
            rank=self.rank,
            world_size=self.world,
            equal_batches=True,
            drop_last=True,
            key_file=cfg.key_file,
        )
        sums = torch.zeros(2, device=self.device)
        self.ddp.eval()
        with torch.no_grad():
            for n, batch in enumerate(data):
                if n >= cfg.eval_batches:
                    break
                sums[0] += self.loss(batch).float()
                sums[1] += 1
        if self.world > 1:
            dist.all_reduce(sums)  # every rank evaluated its share; reduce, not rank 0 alone
        return (sums[0] / sums[1].clamp(min=1)).item()

    def save(self, position: ReadPosition) -> None:
        state = {
            "step": self.step,
            "reader": self.loader.state_dict(position),
            "world_size": self.world,
            "config": self.cfg.model_dump(mode="json"),
        }
        checkpoint.save(
            self.out,
            self.step,
            self.rank,
            self.model,
            self.optimizer,
            self.scheduler,
            state,
            self.cfg.keep,
        )

    @property
    def stop_requested(self) -> bool:
        return bool(stops.received)

    def _say(self, text: str) -> None:
        if self.rank == 0 and not self.cfg.quiet:
            print(f"[dataprep train] {text}", flush=True)

    def _warn(self, text: str) -> None:
        """On stderr, also with --quiet/--json: what the run chose to do about a fault."""
        if self.rank == 0:
            print(f"[dataprep train] {text}", file=sys.stderr, flush=True)

    def _progress(self, record: dict[str, Any]) -> None:
        if self.rank == 0 and not self.cfg.quiet:
            print(
                f"step {record['step']:>6}/{self.cfg.steps}  loss {record['loss']:.4f}  "
                f"lr {record['lr']:.2e}  {record['tokens_per_s']:,.0f} tok/s  "
                f"data wait {100 * record['data_wait_frac']:.1f}%",
                flush=True,
            )


@dataclass
class _Fetched:
    batch: dict[str, Any]
    wait_s: float  # host time blocked in the loader
    marks: tuple[torch.cuda.Event, torch.cuda.Event] | None  # around the fetch, on the stream

    def stall_s(self) -> float:
        """How long the GPU sat idle for want of this batch (after a sync): the gap between
        the marks, about 0 when queued work covered the fetch. On CPU nothing overlaps it."""
        if self.marks is None:
            return self.wait_s
        return self.marks[0].elapsed_time(self.marks[1]) / 1000


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    """An OSError on a file of the run directory is the user's to fix: one sentence."""
    try:
        yield
    except OSError as exc:
        raise DataprepError(f"cannot write {path}: {exc.strerror or exc}") from None


def _last_loss(path: Path, step: int) -> float:
    """The loss logged for the latest step up to `step` (NaN if none was logged)."""
    loss = float("nan")
    if path.exists():
        for line in path.read_text().splitlines():
            with suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                if "loss" in record and int(record["step"]) <= step:
                    loss = float(record["loss"])
    return loss


def _fingerprints(batch: dict[str, Any]) -> list[str]:
    """xxh64 of each sample's token ids: lets an audit check what each rank trained on."""
    rows = batch["tokens"].numpy()
    return [xxhash.xxh64(row.tobytes()).hexdigest() for row in rows]


def _init_process_group(backend: str, world: int) -> None:
    """Join the group through a store namespaced by restart attempt.

    After an elastic restart the agent's store still holds the dead attempt's peer addresses
    under the same keys; a rank that reads one before its new peer overwrites it connects to a
    closed port and the restart fails. A prefix per attempt makes stale keys invisible.
    """
    rank = int(os.environ["RANK"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world,
        is_master=not agent_store and rank == 0,
        timeout=timedelta(minutes=10),
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    prefixed = dist.PrefixStore(f"dataprep/attempt-{attempt}", store)
    dist.init_process_group(backend, store=prefixed, rank=rank, world_size=world)


def train_worker(config_json: str, errors: str | None = None) -> dict[str, Any]:
    """The entry point each process runs (module-level, so the elastic launcher can spawn it).

    `errors`: the launcher's folder for a user error (see `user_error`); without it (started
    by `torchrun`) a user error is raised here."""
    for signum in stops.SIGNALS:
        signal.signal(signum, stops.note)
    cfg = TrainConfig.model_validate_json(config_json)
    folder = Path(errors) if errors else None
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))  # no oversubscription
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if cfg.device != "cpu" and torch.cuda.is_available() else "gloo"
        _init_process_group(backend, world)
    try:
        return Trainer(cfg).train()
    except DataprepError as exc:
        if folder is None:
            if isinstance(exc, RunRefused):
                return {"error": str(exc)}
            raise
        report(folder, int(os.environ.get("RANK", 0)), str(exc))
        sys.exit(USER_ERROR_EXIT)
    except Exception:
        if reported(folder) is not None:  # a peer's user error broke this rank's collective
            sys.exit(USER_ERROR_EXIT)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
