"""The plugin example (examples/plugin-stage) installed as a user installs it, then used.

pip builds the example's wheel offline (`--no-build-isolation`, the setuptools already here)
and installs it into a temporary folder, never the shared site-packages; the CLI then runs with
that folder on PYTHONPATH, so the entry point is found through the wheel's dist-info exactly
as after a `pip install`. Counts are checked against `len()` of the text the built-in `shard`
stage wrote, read back with plain pyarrow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import column, manifest

# ~12 s of CPU in about 15 processes (pip, the CLI, two workers): past 30 s of wall time
# on a busy machine
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-stage"
UNICODE_DOCS = {  # beside the real files: characters that take 2-4 bytes in UTF-8
    "cafe.txt": "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 " * 40,
    "tokyo.txt": "\u6771\u4eac\u90fd\u306e\u5929\u6c17 \U0001f600 " * 300,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed into a folder of its own, offline."""
    pytest.importorskip("setuptools", reason="building the example offline needs setuptools")
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"  # a copy: the build leaves build/ and *.egg-info beside the sources
    shutil.copytree(EXAMPLE, source)
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    pip += ["--no-index", "--disable-pip-version-check", "--quiet", "--target", str(target)]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    (info,) = target.glob("dataprep_charcount-*.dist-info")
    registered = (info / "entry_points.txt").read_text()
    assert "charcount = dataprep_charcount:CharCountStage" in registered
    return target


def dataprep(site: Path, *args: object) -> subprocess.CompletedProcess:
    """`python -m dataprep ARGS` with the installed example (and this checkout) importable."""
    path = os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "dataprep", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real licence texts (one document per file) and two documents of non-ASCII text."""
    folder = tmp_path_factory.mktemp("docs")
    for path in sorted(Path("/usr/share/common-licenses").glob("*"))[:12]:
        shutil.copyfile(path, folder / f"{path.name}.txt")
    for name, text in UNICODE_DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    assert len(list(folder.iterdir())) >= 8, "the licence texts of /usr/share/common-licenses"
    return folder


def texts(dataset: Path) -> list[str]:
    return column(dataset, "text")


def recipe(tmp_path: Path, docs: Path, params: dict, where: str) -> Path:
    path = tmp_path / "recipe.yaml"
    stages = [
        {"id": "shards", "op": "shard", "params": {"format": "text", "shard_rows": 3}},
        {"id": "counted", "op": "charcount", "params": params},
        {"id": "kept", "op": "filter", "params": {"where": where}},
    ]
    body = {"vars": {"root": str(tmp_path / "work")}, "input": {"path": str(docs)}}
    path.write_text(json.dumps({**body, "executor": {"workers": 1}, "stages": stages}))
    return path  # JSON is YAML


def test_the_plugin_runs_in_a_recipe_between_built_in_stages(
    site: Path, docs: Path, tmp_path: Path
) -> None:
    # thresholds from the data, so each one drops some documents whatever files are here
    lengths = sorted(len(p.read_text(encoding="utf-8", errors="replace")) for p in docs.iterdir())
    low, high = lengths[len(lengths) // 4], lengths[3 * len(lengths) // 4]
    path = recipe(tmp_path, docs, {"min_chars": low, "column": "n_chars"}, f"n_chars < {high}")

    ran = dataprep(site, "run", path, "--json", "-q")
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)
    assert [(r["op"], r["status"]) for r in runs] == [
        ("shard", "ran"),
        ("charcount", "ran"),
        ("filter", "ran"),
    ]

    work = tmp_path / "work"
    written = texts(work / "shards")  # what the built-in stage before it wrote
    assert len(written) == len(lengths) and any(not t.isascii() for t in written)
    counted = [t for t in written if len(t) >= low]
    assert 0 < len(counted) < len(written)
    assert texts(work / "counted") == counted
    assert column(work / "counted", "n_chars") == [len(t) for t in counted]
    assert runs[1]["report"]["dropped_short"] == len(written) - len(counted)
    assert runs[1]["report"]["chars_out"] == sum(map(len, counted))
    kept = [t for t in counted if len(t) < high]
    assert 0 < len(kept) < len(counted) and texts(work / "kept") == kept

    shard = manifest(work / "counted")["shards"][0]["path"]
    schema = pq.read_schema(work / "counted" / shard)
    assert schema.names[-1] == "n_chars" and str(schema.field("n_chars").type) == "int64"
    lineage = [entry["stage"] for entry in manifest(work / "kept")["lineage"]]
    assert lineage == ["shard", "charcount", "filter"]

    again = json.loads(dataprep(site, "run", path, "--json", "-q").stdout)
    assert [r["status"] for r in again] == ["cached"] * 3  # the runner's cache, for free


def test_the_plugin_is_a_command_made_from_its_config(
    site: Path, docs: Path, tmp_path: Path
) -> None:
    listed = dataprep(site, "--help")
    assert listed.returncode == 0 and "charcount" in listed.stdout
    shown = dataprep(site, "charcount", "--help")
    assert shown.returncode == 0, shown.stderr
    for flag in ("--text-column", "--column", "--min-chars", "--executor", "--json", "--force"):
        assert flag in shown.stdout
    assert "(>= 0)" in shown.stdout  # the bound written once, in the model
    flags_and_keys = (  # test_cli checks this for the built-ins: the flags are the recipe keys
        "import json; from dataprep import catalog; from dataprep.cli import stages; "
        "from dataprep.stages import get_stage; "
        "bare = {'name': 'bare', 'help': '', 'reads_dataset': True, 'fields': []}; "
        "flags = lambda c: [o for p in c.params for o in p.opts if o.startswith('--')]; "
        "print(json.dumps([flags(stages.command(catalog.spec('charcount'))), "
        "flags(stages.command(bare)), list(get_stage('charcount').Config.model_fields)]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    command = [sys.executable, "-c", flags_and_keys]
    got = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert got.returncode == 0, got.stderr
    flags, shared, keys = json.loads(got.stdout)
    assert set(flags) - set(shared) == {"--" + k.replace("_", "-") for k in keys}
    assert len(keys) == 3 and set(shared) <= set(flags)  # and the run options, as every stage

    shards = tmp_path / "shards"
    made = dataprep(site, "shard", docs, "-o", shards, "--format=text", "--shard-rows=4", "-qw1")
    assert made.returncode == 0, made.stderr
    assert len(manifest(shards)["shards"]) == 4
    out = tmp_path / "out"
    proc = dataprep(site, "charcount", shards, "-o", out, "--min-chars", 1000, "--json", "-w", "2")
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)  # four shards on two worker processes
    expected = [t for t in texts(shards) if len(t) >= 1000]
    assert run["op"] == "charcount" and run["report"]["rows_out"] == len(expected)
    assert column(out, "chars") == [len(t) for t in expected]

    bad = dataprep(site, "charcount", shards, "-o", tmp_path / "bad", "--text-column", "body")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--text-column 'body' is not a column of the input" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_validate_names_the_plugins_params(site: Path, docs: Path, tmp_path: Path) -> None:
    good = recipe(tmp_path, docs, {"min_chars": 10}, "chars > 100")
    proc = dataprep(site, "validate", good)
    assert proc.returncode == 0, proc.stderr
    assert "counted (charcount)" in proc.stdout

    cases = [  # (charcount params, filter's where) -> the lines of the error
        (
            {"min_char": 10, "min_chars": -1},
            "chars > 1",
            [
                "stages[1].params.min_char: unknown key",
                "stages[1].params.min_chars: Input should be greater than or equal to 0",
            ],
        ),
        ({"text_column": "body"}, "chars > 1", ["stages[1].params.text_column 'body' is not a"]),
        # the plugin's output_schema carries its column to the next stage's check
        ({"column": "n"}, "chars > 1", ["stages[2].params.where names 'chars', which is not"]),
    ]
    for params, where, lines in cases:
        proc = dataprep(site, "validate", recipe(tmp_path, docs, params, where))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        for line in lines:
            assert line in proc.stderr, (params, proc.stderr)
    assert not (tmp_path / "work").exists()  # validation writes nothing
