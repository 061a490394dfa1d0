"""Commands that are not stages (train has its own module): run, validate, params, inspect,
verify, sample, export, keygen."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any

import typer

from dataprep.cli import app, output, stages
from dataprep.cli.audit import AuditLog
from dataprep.cli.output import console

_SET_HELP = (
    "Override a stage parameter, STAGE.PARAM=VALUE, or a variable, vars.NAME=VALUE (repeatable)."
)
_KEY_HELP = "Key file for every stage that needs one (replaces the recipe's key_file settings)."


def run(
    recipe_path: Annotated[Path, typer.Argument(metavar="RECIPE", help="Pipeline YAML.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    key_file: Annotated[str | None, typer.Option("--key-file", "-k", help=_KEY_HELP)] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Rerun this stage and all after it.")
    ] = None,
    audit_log: AuditLog = None,
    **values: Any,
) -> None:
    """Run a recipe: stages in order, each reading the previous one's output.

    Finished stages whose input and config are unchanged are skipped. --executor, --address,
    --cpus-per-task and --max-retries override the recipe's `executor:`.
    """
    from dataprep import recipe
    from dataprep.audit_use import set_log
    from dataprep.progress import Reporter

    set_log(audit_log)
    options = stages.RunOptions.pop(values)
    plan = recipe.load(recipe_path, set_ or [], key_file)
    options.serve_metrics()

    def announce(r: Any) -> None:
        if options.chatty:
            note = "done" if r.status == "ran" else "up to date, skipped"
            console.print(f"[bold]{r.stage_id}[/] ({r.op}): {note} -> {r.out}")

    runs = recipe.run(
        plan,
        reporter=Reporter(quiet=not options.chatty),
        force_from=from_,
        on_stage=announce,
        executor_options=options.executor,
    )
    output.print_runs(runs, options.quiet, options.as_json)


stages.with_run_options(run)
app.command(rich_help_panel="Pipelines")(run)


@app.command(rich_help_panel="Pipelines")
def validate(
    recipe_path: Annotated[Path, typer.Argument(metavar="RECIPE", help="Pipeline YAML.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    key_file: Annotated[str | None, typer.Option("--key-file", "-k", help=_KEY_HELP)] = None,
) -> None:
    """Check a recipe without running it: stages, parameters, key files, inputs, and every
    column a stage names against the schema it will see (read from the input's first file
    or manifest, not its data)."""
    from dataprep import recipe

    plan = recipe.load(recipe_path, set_ or [], key_file)
    notes = recipe.check_inputs(plan)
    stages = ", ".join(f"{p.spec.id} ({p.spec.op})" for p in plan.stages)
    console.print(f"[green]ok[/]: {plan.model.name}: {len(plan.stages)} stages: {stages}")
    for note in notes:
        console.print(f"[yellow]note[/]: {note}")


@app.command(rich_help_panel="Pipelines")
def params() -> None:
    """Print the reference of every stage's recipe params (docs/recipe-reference.md)."""
    from dataprep.reference import render

    print(render(), end="")


@app.command(rich_help_panel="Datasets")
def inspect(
    path: Annotated[str, typer.Argument(help="Dataset directory or URI (s3://...).")],
    json: output.Json = False,
    shards: Annotated[int, typer.Option(help="Shard rows to show (0 = all).")] = 20,
) -> None:
    """Show a dataset's schema, shards, totals and lineage."""
    from rich.table import Table

    from dataprep import dataset

    manifest = dataset.read_manifest(path)
    if json:
        output.print_json(manifest.to_json())
        return
    schema = Table(title="schema", title_justify="left")
    schema.add_column("column")
    schema.add_column("type")
    for field in manifest.schema:
        schema.add_row(field.name, str(field.type))
    console.print(schema)
    table = Table(title="shards", title_justify="left")
    for column in ("path", "rows", "bytes", "row groups", "xxh3-128"):
        table.add_column(column, justify="right" if column in ("rows", "bytes") else None)
    shown = manifest.shards if shards == 0 else manifest.shards[:shards]
    for s in shown:
        table.add_row(s.path, f"{s.rows:,}", f"{s.bytes:,}", str(len(s.row_groups)), s.xxh3_128)
    if len(shown) < len(manifest.shards):
        table.add_row(f"… {len(manifest.shards) - len(shown)} more", "", "", "", "")
    console.print(table)
    console.print(
        f"[bold]totals[/]: {len(manifest.shards):,} shards, {manifest.rows:,} rows, "
        f"{manifest.bytes:,} bytes"
    )
    if manifest.encryption:
        console.print(f"[bold]encryption[/]: {jsonlib.dumps(manifest.encryption)}")
    lineage = Table(title="lineage", title_justify="left")
    for column in ("#", "stage", "id", "finished", "version", "config"):
        lineage.add_column(column)
    for n, entry in enumerate(manifest.lineage):
        config = jsonlib.dumps({k: v for k, v in entry.config.items() if v is not None})
        cells = (entry.stage, entry.id or "", entry.finished, entry.version)
        lineage.add_row(str(n), *cells, config)
    console.print(lineage)


@app.command(rich_help_panel="Datasets")
def verify(
    path: Annotated[str, typer.Argument(help="Dataset directory or URI (s3://...).")],
    json: output.Json = False,
    repair_from: Annotated[
        str | None,
        typer.Option(
            "--repair-from",
            metavar="BACKUP",
            help="Replace missing or corrupt shards from this copy (e.g. a `dataprep sync` "
            "target), each checked against this dataset's manifest first.",
        ),
    ] = None,
    key_file: Annotated[
        str | None,
        typer.Option(
            "--key-file",
            "-k",
            help="Encrypted data: also decrypt and check every footer (and its wrapped keys).",
        ),
    ] = None,
) -> None:
    """Check the manifest and every shard (checksum, rows, row groups, schema); exit 1 if bad."""
    from dataprep import dataset

    if repair_from is not None:
        from dataprep.cli.sync import print_repair
        from dataprep.repair import repair_dataset

        print_repair(repair_dataset(path, repair_from), json)
        return
    result = dataset.verify_dataset(path, key_file)
    if json:
        output.print_json(
            {"ok": True, "shards": result.shards, "rows": result.rows, "skipped": result.skipped}
        )
    else:
        console.print(f"[green]ok[/]: {result.shards} shards, {result.rows:,} rows verified")
        if result.skipped:
            console.print(f"[yellow]note[/]: {result.skipped}")


@app.command(rich_help_panel="Datasets")
def sample(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the corpus.")],
    docs: Annotated[int, typer.Option(help="Good documents to generate.")] = 6000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    malformed: Annotated[int, typer.Option(help="Malformed lines to mix in.")] = 12,
    json: output.Json = False,
) -> None:
    """Generate a deterministic synthetic corpus that exercises every stage."""
    from dataprep.sample import generate_corpus

    summary = generate_corpus(out, docs=docs, seed=seed, malformed=malformed)
    if json:
        output.print_json(summary)
    else:
        console.print(
            f"[green]wrote[/] {summary['docs']:,} docs ({summary['malformed']} malformed lines) "
            f"in {len(summary['files'])} files to {out}"
        )


@app.command(rich_help_panel="Datasets")
def export(
    input: Annotated[str, typer.Argument(metavar="IN", help="Dataset directory or URI.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="out.jsonl, out.jsonl.zst, or - for stdout")
    ],
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns (default: all).")
    ] = None,
    level: Annotated[int, typer.Option(help="zstd level for .zst output.")] = 3,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", "-k", help="Key file, if IN is encrypted.")
    ] = None,
    audit_log: AuditLog = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    json: output.Json = False,
) -> None:
    """Write every row as one JSON object per line (zstd-compressed when OUT ends in .zst).

    `-o -` streams plain JSONL to stdout (`| jq`, `| head`); the summary then goes to stderr."""
    from dataprep.audit_use import set_log
    from dataprep.errors import DataprepError
    from dataprep.export import STDOUT, export_jsonl

    set_log(audit_log)
    to_stdout = str(out) == STDOUT
    if to_stdout and json:
        raise DataprepError("--json and -o - both write to stdout; drop one of them")
    with output.closed_pipe_ok():
        summary = export_jsonl(
            input,
            out,
            columns=columns.split(",") if columns else None,
            level=level,
            key_file=key_file,
            overwrite=force,
        )
    if summary["columns_left_out"]:
        left = ", ".join(f"{c} (key {k!r})" for c, k in summary["columns_left_out"].items())
        output.err_console.print(
            f"note: left out {left}: key file {key_file} does not hold their keys", **output.PLAIN
        )
    if json:
        output.print_json(summary)
        return
    size = "" if summary["bytes"] is None else f", {summary['bytes']:,} bytes"
    (output.err_console if to_stdout else output.console).print(
        f"[green]wrote[/] {summary['rows']:,} rows{size} to {'stdout' if to_stdout else out}"
        + (" [yellow](plaintext of an encrypted dataset)[/]" if summary["was_encrypted"] else "")
    )


@app.command(rich_help_panel="Keys")
def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to create (mode 0600).")],
    keys: Annotated[
        str | None,
        typer.Option("--keys", help="Column key names, e.g. text,label (first: the default)."),
    ] = None,
) -> None:
    """Create a key file with new master keys. Never overwrites: losing keys loses data."""
    from dataprep.crypto import generate_key_file

    ring = generate_key_file(out, [k for k in (keys or "").split(",") if k])
    others = [k for k in ring.keys if k not in (ring.footer_key, ring.column_key)]
    output.console.print(
        f"[green]wrote[/] {out} (key set {ring.key_set}: footer key {ring.footer_key}, "
        f"column key {ring.column_key}{''.join(', ' + k for k in others)}); "
        "keep it secret and back it up"
    )
