"""`dataprep audit verify|show`: check the key-use audit log's hash chain, list its records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataprep.cli import app
from dataprep.cli.output import console, print_json

audit_app = typer.Typer(
    help="The key-use audit log (KEYFILE.audit.jsonl): verify its hash chain, show its records.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(audit_app, name="audit", rich_help_panel="Keys")

Log = Annotated[Path, typer.Argument(metavar="LOG", help="Audit log (KEYFILE.audit.jsonl).")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
# the option every command that takes --key-file has (stage commands: cli/stages.py)
AuditLog = Annotated[
    Path | None,
    typer.Option(
        "--audit-log",
        help="Where key uses are recorded (default KEYFILE.audit.jsonl; env DATAPREP_AUDIT_LOG).",
    ),
]
_HEAD_HELP = "A head digest kept elsewhere (`audit show --head`): it must still be in the log."


@audit_app.command("verify")
def verify(
    log: Log,
    head: Annotated[str | None, typer.Option("--head", help=_HEAD_HELP)] = None,
    as_json: AsJson = False,
) -> None:
    """Check every record's digest and the chain; exit 1 naming the first bad record."""
    from dataprep import audit

    count, last, problem = audit.check(log, head)
    if as_json:
        bad = None if problem is None else {"line": problem.line, "why": problem.why}
        print_json(
            {"log": str(log), "ok": problem is None, "records": count, "head": last, "bad": bad}
        )
        if problem is not None:
            raise typer.Exit(1)
        return
    audit.verify(log, head)  # raises the one-sentence VerifyError (exit 1)
    console.print(f"{log}: {count} records, chain intact; head {last}", highlight=False)


@audit_app.command("show")
def show(
    log: Log,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO time (UTC if no zone) or 30m, 2h, 7d.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only records for this dataset (or under it).")
    ] = None,
    head: Annotated[
        bool, typer.Option("--head", help="Print the last record's seq and digest to anchor.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Records as a table (newest last); --json prints them as a list."""
    from dataprep import audit

    found = audit.records(log)
    if head:
        last = found[-1] if found else {"seq": 0, "digest": audit.GENESIS}
        if as_json:
            print_json({"log": str(log), "seq": last.get("seq"), "head": last.get("digest")})
        else:
            typer.echo(f"{last.get('seq')} {last.get('digest')}")
        return
    chosen = audit.select(found, audit.since_time(since) if since else None, dataset)
    if as_json:
        print_json(chosen)
        return
    _table(chosen)


def _table(chosen: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    names = ["seq", "time", "user@host", "pid", "command", "action", "outcome", "dataset"]
    for name in (*names, "keys", "columns"):
        table.add_column(name, overflow="fold")
    for r in chosen:
        outcome = r.get("outcome", "")
        style = "" if outcome == "ok" else "red"
        table.add_row(
            str(r.get("seq", "")),
            str(r.get("time", ""))[:19].replace("T", " "),
            f"{r.get('user', '')}@{r.get('host', '')}",
            str(r.get("pid", "")),
            " ".join((r.get("argv") or [])[:2]),
            str(r.get("action", "")),
            f"[{style}]{outcome}[/]" if style else outcome,
            str(r.get("dataset") or ""),
            ",".join(r.get("key_ids") or []),
            ",".join(r.get("columns") or []),
        )
    console.print(table)
    denied = [r for r in chosen if r.get("outcome") != "ok" and r.get("reason")]
    for r in denied:
        console.print(f"[red]{r.get('seq')}[/]: {escape(str(r['reason']))}", highlight=False)
