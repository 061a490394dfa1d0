"""`dataprep keys rotate|export-subset|show`: master keys of encrypted datasets (keygen makes
key files; this manages what they open)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataprep.cli import app
from dataprep.cli.audit import AuditLog
from dataprep.cli.output import console, print_json
from dataprep.errors import DataprepError

keys_app = typer.Typer(
    help="Rotate a dataset's master keys in place; make partial key files (some columns only).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(keys_app, name="keys", rich_help_panel="Keys")

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
_MAP_HELP = (
    "OLD=NEW key id or name (repeatable); default: each old key's successor is the new key "
    "with the same name (text-1a2b3c4d -> text-9f8e7d6c)."
)


@keys_app.command("rotate")
def rotate(
    datasets: Annotated[
        list[str], typer.Argument(metavar="DIR...", help="Encrypted dataset directories.")
    ],
    key_file: Annotated[
        Path, typer.Option("--key-file", "-k", help="The key file the data is encrypted with.")
    ],
    new_key_file: Annotated[
        Path, typer.Option("--new-key-file", help="The key file to move to (keygen -o NEW).")
    ],
    map_: Annotated[list[str] | None, typer.Option("--map", help=_MAP_HELP)] = None,
    audit_log: AuditLog = None,
    as_json: AsJson = False,
) -> None:
    """Re-wrap the data keys under new master keys without rewriting data (external key
    material, the default of `encrypt`): afterwards only NEW opens the data. Crash-safe."""
    from dataprep.audit_use import set_log
    from dataprep.keys_rotate import rotate as rotate_one

    set_log(audit_log)
    mapping = {}
    for item in map_ or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise DataprepError(f"--map {item!r}: write OLD=NEW (key ids or names)")
        mapping[old] = new
    results = [rotate_one(d, key_file, new_key_file, mapping) for d in datasets]
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    for r in results:
        pairs = ", ".join(f"{a} -> {b}" for a, b in r.keys.items())
        share = 100 * r.bytes_written / max(r.dataset_bytes, 1)
        console.print(
            f"[green]rotated[/] {r.dataset}: {r.shards} shards, {pairs}; wrote "
            f"{r.bytes_written:,} bytes ({share:.3f}% of {r.dataset_bytes:,}) in {r.seconds} s",
            highlight=False,
        )


@keys_app.command("export-subset")
def export_subset(
    key_file: Annotated[Path, typer.Argument(metavar="KEYFILE", help="A full key file.")],
    keys: Annotated[str, typer.Option("--keys", help="Column keys to keep, ids or names: K1,K2.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Partial key file to create.")],
    as_json: AsJson = False,
) -> None:
    """Write a key file with the footer key and only the named column keys (mode 0600): it
    opens only the columns encrypted under those keys (e.g. a labelling team's id,label)."""
    from dataprep.crypto_keys import export_subset as subset

    ring = subset(key_file, [k for k in keys.split(",") if k], out)
    if as_json:
        print_json({"path": str(out), "key_set": ring.key_set, "keys": sorted(ring.keys)})
        return
    console.print(
        f"[green]wrote[/] {out} (key set {ring.key_set}: {', '.join(ring.keys)}); keep it secret",
        highlight=False,
    )


@keys_app.command("show")
def show(
    key_file: Annotated[Path, typer.Argument(metavar="KEYFILE", help="A key file.")],
    as_json: AsJson = False,
) -> None:
    """List a key file's key ids (never key material): footer, default column key, others."""
    from dataprep.crypto_keys import key_name, load_key_file

    ring = load_key_file(key_file)
    doc = {
        "path": str(key_file),
        "key_set": ring.key_set,
        "footer_key": ring.footer_key,
        "column_key": ring.column_key,
        "keys": [{"id": k, "name": key_name(k)} for k in ring.keys],
    }
    if as_json:
        print_json(doc)
        return
    console.print(f"{key_file}: key set {ring.key_set}", highlight=False)
    for k in ring.keys:
        role = {ring.footer_key: " (footer)", ring.column_key: " (default column key)"}.get(k, "")
        console.print(f"  {k}{role}", highlight=False)
