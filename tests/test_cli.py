"""Every stage command runs with only its required options, as a newcomer would type it.

Catches defaults that the stage's config rejects (a CLI passing None where the config wants
its own default), which tests calling `run_stage` with full configs cannot see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, manifest

COMMANDS = {
    "dedup": [],
    "partition": ["--key", "id", "--partitions", "3"],
    "rebalance": ["--shards", "2"],
    "resample": ["--label", "label", "--strategy", "oversample"],
    "compress": [],
    "tokenize": ["--seq-len", "64"],
}


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "shards"
    cli("shard", corpus_dir, "-o", out, "-q")
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_stage_command_with_defaults(command: str, shards: Path, tmp_path: Path) -> None:
    out = tmp_path / command
    cli(command, shards, "-o", out, *COMMANDS[command], "-q")
    assert manifest(out)["totals"]["rows"] > 0
    assert "--executor" in cli(command, "--help").stdout


def test_encrypt_decrypt_and_export_with_defaults(shards: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    cli("keygen", "-o", keys)
    cli("encrypt", shards, "-o", tmp_path / "enc", "--key-file", keys, "-q")
    cli("decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "--key-file", keys, "-q")
    rows = manifest(shards)["totals"]["rows"]
    assert manifest(tmp_path / "dec")["totals"]["rows"] == rows
    cli("export", tmp_path / "dec", "-o", tmp_path / "rows.jsonl")
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == rows


def _stage_specs() -> list[tuple[str, dict]]:
    """(name, spec) of every registered stage, described from its model (not the catalog)."""
    from dataprep import catalog
    from dataprep.stages import get_stage

    return [(name, catalog.describe(get_stage(name))) for name in catalog.registry()]


@pytest.mark.parametrize(
    ("name", "spec"), _stage_specs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_stage_flags_are_its_recipe_keys(name: str, spec: dict) -> None:
    """Every recipe key of every registered stage is a flag (`x_y` <-> `--x-y`) that reaches
    that key, and the command has no other flags but the shared run options."""
    from dataprep.cli import stages
    from dataprep.stage import cli_flag
    from dataprep.stages import get_stage

    keys = set(get_stage(name).Config.model_fields)
    command = stages.command(spec)
    flags = {o for p in command.params for o in p.opts if o.startswith("--")}
    shared = {"--out", "--key-file", "--audit-log", "--executor", "--help"}
    shared |= {cli_flag(p.name) for p in stages.run_options()}
    assert flags - shared == {cli_flag(k) for k in keys} - shared
    assert {cli_flag(k) for k in keys} <= flags
    args = ["IN", "-o", "OUT"]
    for field in spec["fields"]:
        value = {"bool": None, "choice": (field["choices"] or [""])[0], "int": "3"}
        value |= {"float": "0.5"}
        given = value.get(field["kind"], "a,b")
        args += [cli_flag(field["name"])] + ([] if given is None else [given])
    parsed = command.make_context(name, args).params
    assert keys <= set(parsed)
    assert all(parsed[k] is not None for k in keys)


def test_stage_catalog_is_current() -> None:
    """stages.json (what --help reads instead of importing every stage) matches the models."""
    from dataprep import catalog

    assert catalog.CATALOG.read_text() == catalog.render(), (
        "dataprep/catalog.json is stale: run python -m dataprep.catalog"
    )


@pytest.mark.parametrize("args", [["--help"], ["shard", "--help"], ["dedup", "--help"]])
def test_help_does_not_load_data_libraries(args: list[str]) -> None:
    """--help starts in a fraction of a second: pyarrow, numpy and the stage modules stay
    unloaded (they cost ~0.5 s of CPU); so does pydantic for the command list (Typer loads it
    to parse a command's options)."""
    code = (
        "import sys; from dataprep.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('pyarrow', 'numpy', 'dataprep.stage', 'dataprep.stages.shard')\n"
        "heavy += ('pydantic',) if sys.argv[1:] == ['--help'] else ()\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert "Usage" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_json_is_one_list_for_a_stage_and_a_recipe(shards: Path, tmp_path: Path) -> None:
    one = json.loads(cli("compress", shards, "-o", tmp_path / "c", "--json").stdout)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"vars: {{root: {tmp_path / 'run'}}}\ninput: {{path: {shards}}}\n"
        "stages:\n  - {id: c, op: compress}\n  - {id: r, op: rebalance, params: {shards: 2}}\n"
    )
    many = json.loads(cli("run", recipe, "--json", "--set", "r.shards=3", "-w", "1").stdout)
    for runs, count in ((one, 1), (many, 2)):
        assert isinstance(runs, list) and len(runs) == count
        assert all(set(r) == {"id", "op", "out", "status", "report"} for r in runs)
    assert one[0]["op"] == "compress" and one[0]["status"] == "ran"
    assert [r["id"] for r in many] == ["c", "r"] and many[1]["report"]["shards"] == 3


def test_plugin_stage_gets_a_command(tmp_path: Path) -> None:
    """A stage from another package, registered by entry point, is a command with its flags."""
    info = tmp_path / "site" / "flakyplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flakyplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dataprep.stages]\nflaky = flaky_stage:FlakyStage\n")
    path = os.pathsep.join(
        [str(info.parent), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    )
    env = {**os.environ, "PYTHONPATH": path}

    def run(*args: object) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "dataprep", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    assert "flaky" in run("--help").stdout
    shown = run("flaky", "--help").stdout
    assert "--marker-dir" in shown and "--fail-index" in shown and "kill_once" in shown
    (tmp_path / "raw.txt").write_text("x\n")
    markers = tmp_path / "markers"
    markers.mkdir()
    args = ["flaky", tmp_path / "raw.txt", "-o", tmp_path / "out", "--marker-dir", markers]
    proc = run(*args, "--tasks", "2", "-w", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["report"]["rows_out"] == 20
    bad = run(*args, "--tasks", "x")
    assert bad.returncode == 2 and "--tasks" in bad.stderr


def test_a_broken_plugin_does_not_break_the_other_commands(tmp_path: Path) -> None:
    info = tmp_path / "brokenplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dataprep.stages]\nbroken = no_such_module:Stage\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    cmd = [sys.executable, "-m", "dataprep"]
    listed = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "cannot load" in listed.stdout
    shard = subprocess.run([*cmd, "shard", "--help"], capture_output=True, text=True, env=env)
    assert shard.returncode == 0 and "--shard-rows" in shard.stdout
    broken = subprocess.run([*cmd, "broken", "x"], capture_output=True, text=True, env=env)
    assert broken.returncode != 0 and "no_such_module" in broken.stderr


def test_flags_reach_the_model_as_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Literal[1, 2] is offered as choices and reaches the model as an int; a list flag is
    split at commas; a flag left out is left to the model's default."""
    from typing import Literal

    from dataprep import catalog, runner
    from dataprep.cli import stages
    from dataprep.stage import Stage, StageConfig

    class DummyConfig(StageConfig):
        level: Literal[1, 2] = 1
        names: list[str] | None = None
        note: str = "x"

    class Dummy(Stage):
        name = "dummy"
        Config = DummyConfig

    seen: list = []

    def run_stage(op: str, config: StageConfig, out: str, **_: object) -> runner.StageRun:
        seen.append(config)
        return runner.StageRun(op, op, out, "ran", {})

    monkeypatch.setattr("dataprep.stages.get_stage", lambda name: Dummy())
    monkeypatch.setattr(runner, "run_stage", run_stage)
    command = stages.command(catalog.describe(Dummy()))
    args = ["IN", "-o", str(tmp_path / "o"), "--level", "2", "--names", "a, b", "-q", "-w", "1"]
    command.main(args, standalone_mode=False)
    assert seen == [DummyConfig(level=2, names=["a", "b"])]
    with pytest.raises(Exception, match="3"):
        command.main([*args[:3], "--level", "3"], standalone_mode=False)


def _help_texts() -> list[str]:
    from dataprep import catalog

    specs = [catalog.spec(name) for name in catalog.registry()]
    fields = [f for s in specs for f in s["fields"]] + catalog.executor_fields()
    return [s["help"] for s in specs] + [f["help"] for f in fields]


@pytest.mark.parametrize(
    "text",
    ["pip install 'dataprep[ray]'", "[bold]x[/]", "a \\[b] c", "\\\\[x]", "ends \\", "ends \\\\"]
    + ["[] or ['raw']", "[#f00]", "[@click]", "[/x", "no brackets", ""],
)
def test_escape_is_richs(text: str) -> None:
    """The CLI's own markup escape (so a stage command is built without importing rich) gives
    rich's bytes: on these edge cases and on every option help in the catalog."""
    from rich.markup import escape as rich_escape

    from dataprep.cli.output import escape

    for each in [text, *_help_texts()]:
        assert escape(each) == rich_escape(each), each


@pytest.mark.parametrize("mode", ["-q", "--json"])
def test_quiet_or_json_stage_run_does_not_import_rich(
    mode: str, corpus_dir: Path, tmp_path: Path
) -> None:
    """A run that prints nothing to a person does not import rich (~0.01 s of CPU); a run
    that prints its summary still does, through the same console as before."""
    args = ["shard", str(corpus_dir), "-o", str(tmp_path / "out"), "-w", "1", mode]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dataprep", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines()]
    assert "pyarrow" in imported and not [m for m in imported if m.split(".")[0] == "rich"]
    shown = cli("shard", corpus_dir, "-o", tmp_path / "shown", "-w", "1")
    assert "rows out" in shown.stdout and "shards" in shown.stdout
