"""`dataprep train`: DDP training on token blocks, launched through torch's elastic launcher."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer

from dataprep.cli import app
from dataprep.cli.audit import AuditLog
from dataprep.cli.output import console, err_console
from dataprep.errors import DataprepError

Opt = typer.Option


@app.command(rich_help_panel="Training")
def train(
    data: Annotated[str, typer.Argument(help="Dataset of token blocks (from `tokenize`).")],
    out: Annotated[Path, Opt("--out", help="Run directory: checkpoints, metrics.jsonl.")],
    model: Annotated[str, Opt(help="tiny, small or gpt2-124m.")] = "tiny",
    n_layer: Annotated[int | None, Opt(help="Override the size's layers.")] = None,
    n_head: Annotated[int | None, Opt(help="Override the size's heads.")] = None,
    d_model: Annotated[int | None, Opt(help="Override the size's width.")] = None,
    task: Annotated[str, Opt(help="lm, or classify (with --label-col).")] = "lm",
    label_col: Annotated[str, Opt(help="Label column for --task classify.")] = "label",
    steps: Annotated[int, Opt(help="Step to reach; a larger N continues a finished run.")] = 1000,
    batch_size: Annotated[int, Opt(help="Blocks per process per micro-step.")] = 8,
    grad_accum: Annotated[int, Opt(help="Micro-steps per optimizer step.")] = 1,
    seq_len: Annotated[int | None, Opt(help="Must match the dataset (checked).")] = None,
    lr: Annotated[float, Opt(help="Peak learning rate.")] = 3e-4,
    warmup_steps: Annotated[int | None, Opt(help="Default: 5% of the LR horizon.")] = None,
    lr_decay_steps: Annotated[int | None, Opt(help="Cosine horizon (default --steps).")] = None,
    grad_clip: Annotated[float, Opt(help="Max grad norm (0 = off).")] = 1.0,
    checkpoint_every: Annotated[int, Opt(help="Steps between checkpoints.")] = 100,
    keep: Annotated[int, Opt(help="Checkpoints to keep.")] = 3,
    eval_every: Annotated[int, Opt(help="Steps between evaluations (0 = off).")] = 0,
    eval_dir: Annotated[str | None, Opt(help="Held-out token blocks for evaluation.")] = None,
    eval_batches: Annotated[int, Opt(help="Batches per process per evaluation.")] = 20,
    log_every: Annotated[int, Opt(help="Steps between metrics lines.")] = 1,
    seed: Annotated[int, Opt(help="Seed for weights and data order.")] = 0,
    device: Annotated[str, Opt(help="auto, cpu or cuda.")] = "auto",
    compile: Annotated[bool, Opt("--compile", help="torch.compile the model.")] = False,
    grad_compression: Annotated[
        str, Opt(help="none, bf16 (NCCL) or fp16: all-reduce gradients in 16 bits.")
    ] = "none",
    num_workers: Annotated[int, Opt(help="DataLoader workers per process.")] = 1,
    resume: Annotated[bool, Opt(help="Continue from the latest checkpoint in --out.")] = True,
    resume_from: Annotated[
        str | None,
        Opt(
            help="Continue from this kept checkpoint (a folder, or its step in --out); later "
            "ones move to --out/rollbacks/, none is deleted."
        ),
    ] = None,
    allow_data_change: Annotated[
        bool, Opt(help="Resume onto data whose manifest digest differs (logged).")
    ] = False,
    allow_optimizer_change: Annotated[
        bool, Opt(help="Resume with another --lr, schedule, --grad-clip or --grad-accum.")
    ] = False,
    trace_samples: Annotated[
        bool, Opt(help="Write each rank's sample fingerprints to --out (audit).")
    ] = False,
    dp_epsilon: Annotated[
        float | None,
        Opt(help="Train with DP-SGD (Opacus) spending at most this epsilon over --steps."),
    ] = None,
    dp_delta: Annotated[float | None, Opt(help="DP-SGD delta (default 1/(10 x rows)).")] = None,
    dp_max_grad_norm: Annotated[float, Opt(help="DP-SGD per-sample clipping norm.")] = 1.0,
    dp_on_budget: Annotated[
        str, Opt(help="At the budget: stop (checkpoint, exit 4) or warn and go on.")
    ] = "stop",
    alert: Annotated[
        list[str] | None,
        Opt(
            metavar="RULE",
            help="Alert rule NAME[:KEY=VALUE,...] (repeatable; rules above), replacing the "
            "default rule of that name. Fires once per episode: a log line and a record in "
            "RUN/alerts.jsonl.",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    no_default_alerts: Annotated[
        bool,
        Opt(
            "--no-default-alerts",
            help="Judge only the --alert rules given (default: all four rules).",
            rich_help_panel="Monitoring",
        ),
    ] = False,
    on_alert: Annotated[
        str,
        Opt(
            metavar="warn|stop",
            help="warn, or stop: checkpoint and exit 3 (weights from a non-finite loss are "
            "not saved; resume takes the last good checkpoint).",
            rich_help_panel="Monitoring",
        ),
    ] = "warn",
    metrics_port: Annotated[
        int | None,
        Opt(
            metavar="PORT",
            help="Serve Prometheus metrics (dataprep_train_*) from rank 0 on this port "
            "(0: a free one, printed on stderr).",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    nproc_per_node: Annotated[str, Opt(help="Processes: a number, or auto.")] = "auto",
    nnodes: Annotated[str, Opt(help="Nodes: N or MIN:MAX.")] = "1",
    rdzv_endpoint: Annotated[str | None, Opt(help="HOST:PORT for multi-node.")] = None,
    rdzv_id: Annotated[str | None, Opt(help="Job id shared by all nodes.")] = None,
    max_restarts: Annotated[int, Opt(help="Restart all ranks this often on a failure.")] = 0,
    key_file: Annotated[
        Path | None, Opt("--key-file", "-k", help="Keys of encrypted data.")
    ] = None,
    audit_log: AuditLog = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No per-step lines.")] = False,
    json: Annotated[bool, Opt("--json", help="Print the final summary as JSON.")] = False,
) -> None:
    """Train a GPT-style decoder with DDP (NCCL on GPUs, gloo on CPU) on token blocks.

    Checkpoints (model, optimizer, schedule, RNG and reader position) are atomic and
    checksummed; rerunning resumes exactly, also with another number of processes, from the
    newest checkpoint that verifies. SIGTERM (Ctrl-C: SIGINT) saves a checkpoint and exits
    with code 143 (130); rerunning the same command resumes. A finished run says so.

    Alert rules, all four on by default (--alert NAME:KEY=VALUE,... with the defaults shown):

    nonfinite: the loss is NaN or infinite.

    loss_spike:k=4,window=50,min=10: loss > mean + k std of the last `window` finite losses.

    stall:pct=30,window=10,skip=5: the data stall is over pct % of the last `window` steps' time.

    throughput:pct=50,window=5,skip=5,min=10: median tokens/s of the window < pct % of the run's.

    `skip`: steps after a (re)start not judged; `min`: steps known before judging.

    Rank 0 judges each step; --on-alert stop: all ranks stop after the next step, save, exit 3.
    """
    from pydantic import ValidationError

    from dataprep.audit_use import set_log
    from dataprep.stage import describe_validation
    from dataprep.train.alerts import resolve
    from dataprep.train.config import TrainConfig
    from dataprep.train.launch import STOPPED_EXIT, launch

    set_log(audit_log)  # the ranks and their DataLoader workers inherit it
    values = {k: v for k, v in locals().items() if k in TrainConfig.model_fields}
    values.update(
        data=str(data),
        out=str(out),
        eval_dir=str(eval_dir) if eval_dir else None,
        quiet=quiet or json,
        key_file=str(key_file) if key_file else None,
        alerts=resolve(alert or [], defaults=not no_default_alerts),
    )
    try:
        cfg = TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise DataprepError(describe_validation(exc, "train")) from None
    if cfg.dp_epsilon is not None:  # missing: one sentence naming the extra, before any rank
        import opacus  # noqa: F401
    if resume_from is not None:  # before any rank starts; refused without moving anything
        from dataprep.train.rollback import prepare

        if note := prepare(cfg, resume_from):  # "": a rank besides 0 under torchrun
            err_console.print(note, markup=False, highlight=False)
    summary = launch(cfg, nproc_per_node, nnodes, rdzv_endpoint, rdzv_id, max_restarts)
    if json:
        print(jsonlib.dumps(summary, indent=2))
    stopped = summary.get("stopped_by")
    if stopped:  # one line and the exit code schedulers expect; the checkpoint resumes it
        where = "before the first checkpoint"
        if summary["checkpoint"]:
            where = f"at step {summary['step']}; checkpoint saved"
        what = "interrupted" if stopped == "SIGINT" else f"stopped by {stopped}"
        if stopped == "alert":
            what = f"stopped by alert {summary.get('alert')}"
            latest = str(summary.get("checkpoint"))
            if not latest.endswith(f"step-{summary['step']:08d}"):
                where = f"at step {summary['step']}, not saved (non-finite loss); " + (
                    f"latest checkpoint {latest}" if latest != "None" else "no checkpoint yet"
                )
        line = f"{what} {where}; rerun the same command to resume"
        if stopped == "dp-budget":
            line = (
                f"privacy budget spent (epsilon {summary.get('dp_epsilon', 0):.3g} of "
                f"--dp-epsilon {cfg.dp_epsilon:g}) {where}; a larger --dp-epsilon continues it"
            )
        err_console.print(line, markup=False, highlight=False)
        raise typer.Exit(STOPPED_EXIT.get(stopped, STOPPED_EXIT["SIGTERM"]))
    if json:
        return
    if summary.get("status") == "complete":
        console.print(
            f"already complete at step {summary['step']} (last logged loss "
            f"{summary['loss']:.4f}); pass a larger --steps to train further; checkpoint "
            f"{summary['checkpoint']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"[green]done[/]: step {summary['step']}, loss {summary['loss']:.4f}, "
            f"{summary['tokens_per_s']:,.0f} tokens/s, checkpoint {summary['checkpoint']}"
        )
