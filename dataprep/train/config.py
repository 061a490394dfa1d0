"""The trainer's settings: one pydantic model shared by the CLI and every rank."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataprep.train.alerts import DEFAULTS
from dataprep.train.model import SIZES


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str
    out: str
    model: Literal[tuple(SIZES)] = "tiny"  # type: ignore[valid-type]
    n_layer: int | None = Field(None, gt=0)
    n_head: int | None = Field(None, gt=0)
    d_model: int | None = Field(None, gt=0)
    task: Literal["lm", "classify"] = "lm"
    label_col: str = "label"
    steps: int = Field(1000, gt=0, description="the step to reach (steps count from 1)")
    batch_size: int = Field(8, gt=0, description="blocks per process per micro-step")
    grad_accum: int = Field(1, gt=0)
    seq_len: int | None = Field(None, gt=1, description="must match the dataset's")
    lr: float = Field(3e-4, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_steps: int | None = Field(None, ge=0, description="default: 5% of lr_decay_steps")
    lr_decay_steps: int | None = Field(None, gt=0, description="cosine horizon; default: steps")
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    checkpoint_every: int = Field(100, gt=0)
    keep: int = Field(3, gt=0)
    eval_every: int = Field(0, ge=0)
    eval_dir: str | None = None
    eval_batches: int = Field(20, gt=0)
    log_every: int = Field(1, gt=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    grad_compression: Literal["none", "bf16", "fp16"] = "none"
    num_workers: int = Field(1, ge=0, description="DataLoader workers per process")
    resume: bool = True
    key_file: str | None = Field(None, description="key file for encrypted datasets")
    quiet: bool = Field(False, description="no per-step lines on stdout")
    trace_samples: bool = Field(False, description="log a fingerprint of every trained sample")
    allow_data_change: bool = Field(
        False, description="resume onto training or eval data of another digest"
    )
    allow_optimizer_change: bool = Field(
        False, description="resume with other optimizer settings (lr, schedule, ...)"
    )
    alerts: tuple[str, ...] = Field(DEFAULTS, description="alert rules (see train/alerts.py)")
    on_alert: Literal["warn", "stop"] = "warn"
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus, rank 0")
    dp_epsilon: float | None = Field(None, gt=0, description="DP-SGD: the privacy budget")
    dp_delta: float | None = Field(None, gt=0, lt=1, description="DP-SGD: default 1/(10 rows)")
    dp_max_grad_norm: float = Field(1.0, gt=0, description="DP-SGD: per-sample clipping norm")
    dp_on_budget: Literal["stop", "warn"] = "stop"

    @model_validator(mode="after")
    def _dp_compatible(self) -> TrainConfig:
        """Options DP-SGD cannot honour are refused before any process starts."""
        if self.dp_epsilon is not None and self.compile:
            raise ValueError("--compile cannot be combined with --dp-epsilon (per-sample hooks)")
        if self.dp_epsilon is not None and self.grad_compression != "none":
            raise ValueError(
                "--grad-compression cannot be combined with --dp-epsilon (the DP optimizer "
                "all-reduces the noised gradients itself)"
            )
        return self

    def horizon(self) -> int:
        return self.lr_decay_steps or self.steps

    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else self.horizon() // 20
