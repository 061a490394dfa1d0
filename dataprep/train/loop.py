"""One training process (one rank): DDP over the reader's batches, with exact resume.

Everything a resumed run needs is in the checkpoint (model, optimizer, scheduler, step, RNG,
and the reader's few-integer state), so stopping at step N and resuming gives the same
parameters as never stopping (bit for bit on CPU), and a different process count continues
the same epoch with no sample repeated or lost.

A step is `_step` (micro-batches, optimizer, the next batch fetched while the device works,
one all-reduce), then `_log` and `_checkpoint`; `train` only sequences them. The data feed,
the run's logs, the choice of checkpoint and the process entry are modules of their own.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from dataprep.errors import DataprepError
from dataprep.loader import ReadPosition, ShardDataset, make_dataloader
from dataprep.train import checkpoint, privacy, provenance, restore, stops
from dataprep.train.config import TrainConfig
from dataprep.train.data import DataFacts, inspect_data
from dataprep.train.feed import Feed, Fetched
from dataprep.train.metrics import peak_flops
from dataprep.train.model import GPT, shape_for
from dataprep.train.runlog import Console, RunLog
from dataprep.train.user_error import RunRefused
from dataprep.train.watch import Watch

__all__ = ["RunRefused", "Trainer", "pick_device"]


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise DataprepError("--device cuda was asked for, but no CUDA GPU is visible")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@dataclass
class _Step:
    """What one optimizer step leaves for logging and checkpointing."""

    lr: float  # the learning rate this step used
    loss: float  # mean over ranks and micro-batches
    stop: bool  # some rank was asked to stop: save and leave, all together
    position: ReadPosition  # the reader's position a checkpoint after this step records
    ahead: Fetched | None  # the next step's first batch (None: the last step is done)


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.facts: DataFacts = inspect_data(cfg)
        self.provenance = provenance.Provenance(cfg, self.rank, self._warn)  # data digests
        self.is_cuda = self.device.type == "cuda"
        self.console = Console(self.rank, cfg.quiet, cfg.steps)
        self.peak = peak_flops(torch.cuda.get_device_name(self.device)) if self.is_cuda else None

    # --- setup -------------------------------------------------------------------------------

    def build(self) -> None:
        self._build_model()
        self._build_data()
        self.private = privacy.plan_for(self.cfg, self.world)
        self.step, self.epoch = 0, 0
        found = self._resume_point() if self.cfg.resume else None
        self.resumed_from, rng = None, None
        if found is not None:
            self._restore(found)
            rng = found.rng
        if self.private:
            self.private.check_start(self.step, self.cfg.steps)
        if rng is not None:
            checkpoint.set_rng_state(rng)
        else:
            torch.manual_seed(self.cfg.seed * 1000 + self.rank + self.step)
        self._wrap()

    def _build_model(self) -> None:
        cfg = self.cfg
        self.shape = shape_for(
            cfg.model,
            self.facts.vocab_size,
            self.facts.seq_len,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            d_model=cfg.d_model,
            n_classes=len(self.facts.labels),
        )
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model = GPT(self.shape).to(self.device)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=self.is_cuda)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)

    def _build_data(self) -> None:
        cfg = self.cfg
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

    def _resume_point(self) -> checkpoint.Loaded | None:
        return restore.resume_point(self.out, self.rank, self.world, self.device, self._warn)

    def _restore(self, found: checkpoint.Loaded) -> None:
        """Model, optimizer, schedule, step and reader position from `found`."""
        restore.check_same_order(self.cfg, self.out, found, self.provenance)
        self.model.load_state_dict(found.states["model"])
        self.optimizer.load_state_dict(found.states["optimizer"])
        self.scheduler.load_state_dict(found.states["scheduler"])
        restore.apply_settings(self.cfg, self.optimizer, self.scheduler)  # if allowed
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
        if self.private and found.train_state.get("privacy"):
            self.private.resumed(found.train_state["privacy"])

    def _wrap(self) -> None:
        """DDP across ranks (optionally compressing gradients), then torch.compile."""
        cfg = self.cfg
        self.ddp: Any = self.model
        if self.private:  # per-sample clipping and noise replace DDP's gradient all-reduce
            self.ddp, self.optimizer = self.private.wrap(
                self.model, self.optimizer, self.world, cfg.batch_size
            )
        elif self.world > 1:
            self.ddp = DDP(self.model, device_ids=[self.device.index] if self.is_cuda else None)
            if cfg.grad_compression != "none":
                from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

                hook = getattr(default_hooks, f"{cfg.grad_compression}_compress_hook")
                self.ddp.register_comm_hook(None, hook)
        if cfg.compile:
            self.ddp = torch.compile(self.ddp)

    def _lr_factor(self, index: int) -> float:
        """Linear warmup then cosine to min_lr_ratio; `index` is the number of steps done."""
        step = index + 1
        warmup, horizon = self.cfg.warmup(), self.cfg.horizon()
        if warmup and step <= warmup:
            return step / warmup
        progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
        floor = self.cfg.min_lr_ratio
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    # --- the run -----------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        self.build()
        resumed = self.step if cfg.resume else None  # --no-resume: keep any earlier log
        log = RunLog(self.out, self.rank, cfg.trace_samples, resumed)
        self.watch = Watch(cfg, self.rank, self.console, resumed, self.tokens_per_step,
                           self.device.index)  # fmt: skip
        feed = self._feed()
        started, first_step, last_loss = time.perf_counter(), self.step, float("nan")
        if self.step >= cfg.steps:  # finished before: report its last logged loss
            last_loss = log.last_loss(self.step)
        self.console.say(
            f"training {self.shape.n_layer}x{self.shape.d_model} on {self.world} "
            f"process(es), {self.device.type}, from step {self.step}"
            + (f" (resumed from {self.resumed_from})" if self.resumed_from else "")
        )
        stopping = False
        t0 = time.perf_counter()
        ahead = feed.fetch() if self.step < cfg.steps else None
        during = [ahead] if ahead else []  # the fetches made inside this step's wall time
        while ahead is not None:
            done = self._step(feed, ahead, during, log)
            ahead, last_loss, stopping = done.ahead, done.loss, done.stop
            if self.is_cuda:
                torch.cuda.synchronize()
            self._log(done, time.perf_counter() - t0, during, log)
            self._checkpoint(done)
            if stopping:  # the launcher says so, once, and exits with its own code
                break
            t0, during = time.perf_counter(), []
        log.close()
        self.watch.close()
        seconds = time.perf_counter() - started
        return self._summary(seconds, first_step, last_loss, stopping) | self.watch.summary()

    def _feed(self) -> Feed:
        too_few = (
            f"{self.cfg.data} has too few blocks for batch size {self.cfg.batch_size} "
            f"on {self.world} processes; lower --batch-size"
        )
        return Feed(self.dataset, self.loader, self.epoch, self.is_cuda, too_few)

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.facts.seq_len * self.cfg.grad_accum * self.world

    def _step(self, feed: Feed, first: Fetched, during: list[Fetched], log: RunLog) -> _Step:
        """One optimizer step on `first` and grad_accum - 1 more batches; the next step's first
        batch is fetched while the device still works on this one. Fetches join `during`."""
        cfg = self.cfg
        total = torch.zeros(2, device=self.device)  # loss, stop requests: one all-reduce
        self.ddp.train()
        for micro in range(cfg.grad_accum):
            if micro:
                during.append(feed.fetch())
            batch = during[-1].batch if micro else first.batch
            log.trace(self.step + 1, batch)
            sync = micro == cfg.grad_accum - 1 or self.world == 1 or self.private
            with nullcontext() if sync else self.ddp.no_sync():
                loss = self.loss(batch)  # DP: per-sample grads of the loss itself, clipped
                (loss if self.private else loss / cfg.grad_accum).backward()
            total[0] += loss.detach().float() / cfg.grad_accum
        if cfg.grad_clip and not self.private:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self.private:
            self.private.step_taken(self.step + 1 < cfg.steps, self.console.warn)
        lr = self.scheduler.get_last_lr()[0]  # what this step used; stepping sets the next
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        position = self.loader.position()
        ahead = feed.fetch() if self.step < cfg.steps else None
        during += [ahead] if ahead else []
        self.epoch = feed.epoch  # the reader's epoch after that fetch: what the record says
        total[1] = float(self.stop_requested)
        if self.world > 1:
            dist.all_reduce(total)
        loss_value = total[0].item() / self.world
        return _Step(lr, loss_value, total[1].item() > 0, position, ahead)

    def _log(self, done: _Step, seconds: float, fetches: list[Fetched], log: RunLog) -> None:
        """The step's metrics record: watched (alerts, Prometheus) every step, logged every
        log_every steps and at the last; then evaluation."""
        cfg = self.cfg
        due = self.step % cfg.log_every == 0 or self.step == cfg.steps
        wait = sum(f.wait_s for f in fetches)
        stall = sum(f.stall_s() for f in fetches)
        record = {
            "step": self.step,
            "loss": done.loss,
            "lr": done.lr,
            "epoch": self.epoch,
            "tokens_per_s": self.tokens_per_step / seconds,
            "step_time_s": seconds,
            "data_wait_s": wait,
            "data_wait_frac": wait / seconds,
            "data_stall_s": stall,
            "data_stall_frac": stall / seconds,
        }
        if self.private and due:
            record["dp_epsilon"] = self.private.spent()
        if self.is_cuda:
            record["gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            if self.peak:
                flops = self.shape.flops_per_token() * self.tokens_per_step
                record["mfu"] = flops / seconds / (self.peak * self.world)
        self.watch.observe(record)
        if due:
            log.log(record)
            self.console.progress(record)
        if cfg.eval_every and self.step % cfg.eval_every == 0:
            log.log({"step": self.step, "eval_loss": self.watch.evaluated(self.evaluate())})

    def _checkpoint(self, done: _Step) -> None:
        """Every checkpoint_every steps, at the last step, and when asked to stop."""
        cfg = self.cfg
        if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or done.stop:
            if self.watch.may_save(done.loss):  # not NaN weights under --on-alert stop
                self.save(done.position)

    def _summary(
        self, seconds: float, first_step: int, last_loss: float, stopping: bool
    ) -> dict[str, Any]:
        done = self.step - first_step
        stopped = stopping and self.step < self.cfg.steps
        return {
            "status": "stopped" if stopped else ("trained" if done else "complete"),
            "step": self.step,
            "loss": last_loss,
            "seconds": round(seconds, 2),
            "tokens_per_s": done * self.tokens_per_step / seconds if seconds and done else 0.0,
            "world_size": self.world,
            "checkpoint": str(checkpoint.latest(self.out)),
            "stopped_by": stops.name() if stopped else None,
        } | ({"dp_epsilon": self.private.spent()} if self.private else {})

    # --- pieces a step uses ------------------------------------------------------------------

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
            "config": provenance.recorded_config(self.cfg),
            **self.provenance.record(),  # dataprep version, data digests and lineage
        }
        if self.private:
            state["privacy"] = self.private.state()
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
        return bool(stops.received or stops.requested)

    def _warn(self, text: str) -> None:
        self.console.warn(text)
