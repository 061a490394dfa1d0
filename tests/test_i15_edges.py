"""Issue 15, items 3 and 8: a missing optional package, Ctrl-C, --version, a tiny undersample
and dedup examples each reach a person as one plain sentence (real processes, real data)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from helpers import cli
from parts_data import report, run, write_jsonl

import dataprep
from dataprep import dataset
from dataprep.runner import run_stage

ROOT = Path(__file__).resolve().parents[1]

# Makes `import torch` (and tokenizers, ray) fail as on a machine without the extras.
BLOCKER = """
import sys

BLOCKED = {blocked!r}


class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
"""


def _without(tmp_path: Path, *blocked: str) -> dict[str, str]:
    """An environment whose Python cannot import `blocked` (a sitecustomize on PYTHONPATH)."""
    folder = tmp_path / "site-without"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(blocked)))
    path = os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataprep", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred documents, sharded."""
    root = tmp_path_factory.mktemp("edges")
    rows = [
        {"id": f"doc-{i}", "text": f"document {i} says {'word ' * (i % 17)}"} for i in range(300)
    ]
    (root / "raw").mkdir()
    write_jsonl(root / "raw" / "a.jsonl", rows)
    run_stage("shard", {"shard_rows": 100}, root / "shards", inputs=[str(root / "raw")])
    return root / "shards"


# item 3: a missing extra is one sentence naming it, exit 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["tokenize", "{shards}", "-o", "tok", "--tokenizer", "bpe", "--vocab-size", "300"],
            "dataprep tokenize needs the Hugging Face tokenizers package: "
            "pip install 'dataprep[torch]'",
        ),
        (
            ["train", "{blocks}", "--out", "run", "--steps", "1", "--seq-len", "16"],
            "dataprep train needs PyTorch: pip install 'dataprep[torch]'",
        ),
        (
            ["shard", "{raw}", "-o", "ray-out", "--executor", "ray"],
            "needs Ray on this machine: pip install 'dataprep[ray]'",
        ),
    ],
    ids=["tokenize-bpe", "train", "ray"],
)
def test_missing_extra_is_one_sentence(
    texts: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    blocks = tmp_path / "blocks"
    if "{blocks}" in args:  # real token blocks, so train gets as far as needing torch
        run_stage("tokenize", {"tokenizer": "byte", "seq_len": 16}, blocks, input_path=texts)
    paths = {"shards": texts, "blocks": blocks, "raw": texts.parent / "raw"}
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    proc = _run(argv, _without(tmp_path, "torch", "tokenizers", "ray"), tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _import_torch(attempts: str) -> None:
    """A pool task that needs torch; it notes each attempt in the file `attempts`."""
    with open(attempts, "a") as f:
        f.write("x")
    import torch  # noqa: F401


def test_a_missing_package_in_a_worker_is_not_retried(tmp_path: Path) -> None:
    """Workers spawned without torch fail the same way every time: raised at once, with the
    name the CLI turns into its sentence."""
    from helpers import restored_env

    from dataprep.executors.local import LocalExecutor

    attempts = tmp_path / "attempts"
    with restored_env(["PYTHONPATH"]):
        os.environ["PYTHONPATH"] = _without(tmp_path, "torch")["PYTHONPATH"]
        with LocalExecutor(workers=2, max_retries=2) as pool:
            with pytest.raises(ModuleNotFoundError) as caught:
                pool.run(_import_torch, [str(attempts), str(attempts)])
    assert caught.value.name == "torch"
    assert len(attempts.read_text()) <= 2  # one attempt per task (was 4: retried)


IMPORT_NAMES = {"nvidia-ml-py": "pynvml"}  # distribution -> the module the CLI imports


def test_every_extra_package_has_a_sentence() -> None:
    """Each package an extra installs (but the test extra) is one the CLI names."""
    from dataprep.errors import OPTIONAL_PACKAGES

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra, requirements in project["optional-dependencies"].items():
        if extra == "test":
            continue
        for requirement in requirements:
            name = requirement.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
            name = IMPORT_NAMES.get(name, name)
            assert name in OPTIONAL_PACKAGES, f"{name} (extra {extra}) has no sentence"
            assert OPTIONAL_PACKAGES[name][1] == extra


# item 8: Ctrl-C, --version, a tiny undersample, dedup examples by id

INTERRUPTED = "interrupted; rerun the same command to resume"


def _many_documents(root: Path, files: int = 16, rows: int = 12_000) -> Path:
    """Enough plain JSONL for a two-worker shard to take several seconds."""
    root.mkdir()
    filler = "lorem ipsum dolor sit amet " * 8
    for f in range(files):
        lines = (
            json.dumps({"id": f"f{f}-{i}", "text": f"{filler}{f} {i}"}) + "\n" for i in range(rows)
        )
        (root / f"part-{f:02d}.jsonl").write_text("".join(lines))
    return root


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path: Path) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) mid-run: one line, exit 130;
    rerunning the same command finishes a dataset that verifies."""
    raw = _many_documents(tmp_path / "raw")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "dataprep", "shard", str(raw), "-o", str(out)]
    args += ["--workers", "2", "--shard-rows", "2000"]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list((out / ".dataprep" / "tasks").glob("*.json")):  # a task finished
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [INTERRUPTED], stderr
    again = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["report"]["rows_out"] == 16 * 12_000
    verified = cli("verify", str(out), "--json")
    assert json.loads(verified.stdout)["rows"] == 16 * 12_000


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_ctrl_c_while_starting_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C while the command is still importing (pyarrow loaded, the rest not yet)."""
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    args = [sys.executable, "-m", "dataprep", "shard", str(tmp_path), "-o", str(tmp_path / "o")]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    while proc.poll() is None and "libarrow" not in maps.read_text():
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert proc.returncode in (0, 130), stderr  # 0: it finished before the signal came
    assert stderr.strip().splitlines() == ([INTERRUPTED] if proc.returncode else [])


def test_version() -> None:
    proc = cli("--version")
    assert proc.stdout.strip() == f"dataprep {dataprep.__version__}"


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 rows of which 8 are 'rare': undersampling keeps 16."""
    root = tmp_path_factory.mktemp("skewed")
    rows = [
        {"id": f"r{i}", "text": f"row {i}", "label": "rare" if i % 250 == 0 else "common"}
        for i in range(2000)
    ]
    (root / "raw").mkdir()
    write_jsonl(root / "raw" / "a.jsonl", rows)
    run_stage("shard", {"shard_rows": 500}, root / "shards", inputs=[str(root / "raw")])
    return root / "shards"


def test_tiny_undersample_warns(skewed: Path, tmp_path: Path) -> None:
    run("resample", {"label": "label", "strategy": "undersample"}, skewed, tmp_path / "u")
    warnings = report(tmp_path / "u").get("warnings", [])
    assert len(warnings) == 1 and "'rare'" in warnings[0] and "8 rows" in warnings[0]
    assert "16 of 2,000 rows" in warnings[0]
    args = ["-o", tmp_path / "cli", "--label", "label", "--strategy", "undersample", "-q"]
    proc = cli("resample", skewed, *args)
    assert f"warning: resample: {warnings[0]}" in " ".join(proc.stderr.split())


def test_balanced_undersample_does_not_warn(skewed: Path, tmp_path: Path) -> None:
    params = {"label": "label", "strategy": "undersample", "max_ratio": 100}
    run("resample", params, skewed, tmp_path / "u")
    assert "warnings" not in report(tmp_path / "u")  # keeps 808 of 2,000 rows


def test_dedup_examples_name_ids(tmp_path: Path) -> None:
    """Example pairs cite the configured id column's values, not row numbers."""
    rows = [{"key": f"k{i}", "text": f"unique text number {i} " * 3} for i in range(40)]
    rows += [{"key": "copy-of-k3", "text": rows[3]["text"]}]
    (tmp_path / "raw").mkdir()
    write_jsonl(tmp_path / "raw" / "a.jsonl", rows)
    shards = tmp_path / "shards"
    run_stage("shard", {"id_column": "key"}, shards, inputs=[str(tmp_path / "raw")])
    run("dedup", {"method": "exact"}, shards, tmp_path / "d")
    examples = report(tmp_path / "d")["examples"]
    assert [(e["kept_id"], e["removed_id"]) for e in examples] == [("k3", "copy-of-k3")]
    assert "kept_row" not in examples[0]
    proc = cli("dedup", shards, "-o", tmp_path / "cli", "--method", "exact")
    assert "id 'copy-of-k3' ~ id 'k3'" in proc.stdout
    assert dataset.read_rows(tmp_path / "d", ["key"]).num_rows == 40
