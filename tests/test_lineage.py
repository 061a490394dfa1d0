"""Lineage from a model to its data, `train --resume-from` and the refusal to resume onto
other data, on a real pipeline: the licence texts of this machine sharded a line per row,
exact-deduplicated and tokenized, then a tiny model trained on them with real processes.

Oracles: each dataset's digest is computed here from its manifest file alone (xxh3-128 of the
Arrow schema bytes, then `path\\0xxh3\\0` of every shard), rows from the manifests' totals and
the raw inputs from the files themselves; the original run's metrics.jsonl is the oracle of a
resumed run's losses.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import xxhash
from helpers import cli, cli_all

from dataprep import __version__, lineage, lineage_text
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage

LICENSES = Path("/usr/share/common-licenses")
SEQ = 32
TRAIN = ("--model", "tiny", "--seq-len", str(SEQ), "--batch-size", "4", "--num-workers", "0")
TRAIN += ("--device", "cpu", "--nproc-per-node", "1", "--checkpoint-every", "4", "--json")


def _manifest(path: Path) -> dict:
    return json.loads((path / ".manifest.json").read_text())


def _digest(path: Path) -> str:
    """A dataset's content digest from its manifest file alone."""
    doc = _manifest(path)
    h = xxhash.xxh3_128(base64.b64decode(doc["schema"]["arrow"]))
    for shard in doc["shards"]:
        h.update(f"{shard['path']}\0{shard['xxh3_128']}\0".encode())
    return h.hexdigest()


def _rows(path: Path) -> int:
    return _manifest(path)["totals"]["rows"]


def _pipeline(root: Path) -> Path:
    """shard (a line per row) -> exact dedup -> tokenize: returns the token blocks."""
    one = LocalExecutor(1)
    config = {"format": "text", "lines": True, "shard_rows": 1500}
    run_stage("shard", config, root / "shards", inputs=[str(LICENSES)], executor=one)
    run_stage("dedup", {"method": "exact"}, root / "dedup", input_path=root / "shards")
    run_stage("tokenize", {"seq_len": SEQ}, root / "tok", input_path=root / "dedup", executor=one)
    return root / "tok"


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def run(tok: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 steps, checkpoints at 4 and 8, evaluated on the same blocks."""
    out = tmp_path_factory.mktemp("train") / "run"
    more = ("--steps", "8", "--eval-dir", str(tok), "--eval-every", "4", "--eval-batches", "2")
    cli("train", tok, "--out", out, *TRAIN, *more)
    return out


def _lineage(path: Path) -> dict:
    """What `dataprep lineage PATH --json` prints, computed in this process (the command
    itself is run in `test_lineage_of_a_dataset_lists_each_stage_back_to_the_raw_files`)."""
    return json.loads(json.dumps(lineage.of(path), default=str))


def _chain(node: dict) -> list[dict]:
    """The nodes from a dataset back to the raw input, following the first input."""
    found = [node]
    while found[-1].get("inputs"):
        found.append(found[-1]["inputs"][0])
    return found


def _raw_files() -> list[Path]:  # what shard reads: the files, not the links to them
    return [p for p in LICENSES.iterdir() if p.is_file() and not p.is_symlink()]


def test_lineage_of_a_dataset_lists_each_stage_back_to_the_raw_files(tok: Path) -> None:
    root = tok.parent
    chain = _chain(json.loads(cli("lineage", tok, "--json").stdout))
    assert chain == _chain(_lineage(tok))
    assert [n["kind"] for n in chain] == ["dataset", "dataset", "dataset", "raw"]
    assert [n["stage"]["op"] for n in chain[:3]] == ["tokenize", "dedup", "shard"]
    for node, name in zip(chain[:3], ("tok", "dedup", "shards"), strict=True):
        assert node["path"] == str(root / name) and node["available"] is True
        assert node["digest"] == _digest(root / name)
        assert node["rows"] == node["stage"]["rows_out"] == _rows(root / name)
    assert chain[0]["stage"]["rows_in"] == _rows(root / "dedup")
    assert chain[1]["stage"]["rows_in"] == _rows(root / "shards")
    assert chain[1]["stage"]["rows_out"] < chain[1]["stage"]["rows_in"]  # duplicates went
    raw = chain[3]
    lines = sum(1 for p in _raw_files() for x in p.read_text().splitlines() if x.strip())
    assert chain[2]["stage"]["rows_in"] == raw["rows"] == lines
    assert raw["files"] == len(_raw_files())
    assert raw["bytes"] == sum(p.stat().st_size for p in _raw_files())
    assert raw["paths"] == [str(LICENSES)] and raw["available"] is False
    assert raw["check"] == "unchanged"  # the same paths, sizes and mtimes as when sharded
    assert raw["digest"] == _manifest(root / "shards")["lineage"][0]["input_digest"]
    text = cli("lineage", tok).stdout
    assert f"digest {_digest(tok)}" in text and "unchanged since the stage read them" in text


def test_raw_files_are_rechecked_by_their_paths_sizes_and_mtimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharded from a relative path: lineage, run from elsewhere, re-checks the same files."""
    texts = tmp_path / "texts"
    shutil.copytree(LICENSES, texts, symlinks=True)
    with monkeypatch.context() as here:
        here.chdir(tmp_path)
        run_stage("shard", {"format": "text", "lines": True}, "shards", inputs=["texts"])

    def raw() -> dict:
        return _chain(_lineage(tmp_path / "shards"))[-1]

    first = raw()
    assert first["check"] == "unchanged" and first["paths"] == [str(texts)]
    assert first["files"] == len(_raw_files())
    with open(texts / "BSD", "a") as f:
        f.write("one more line\n")
    changed = raw()
    assert changed["check"] == "changed" and changed["note"].startswith("not available")
    shutil.rmtree(texts)
    assert raw()["check"] == "missing"
    many = [tmp_path / f"doc{i:02d}.txt" for i in range(12)]
    for i, path in enumerate(many):
        path.write_text(f"document {i}\n")
    run_stage("shard", {"format": "text"}, tmp_path / "many", inputs=[str(p) for p in many])
    text = cli("lineage", tmp_path / "many").stdout
    assert f"{many[4]} and 7 more (12 files" in text and str(many[5]) not in text


def test_lineage_says_which_inputs_were_deleted_or_changed(tmp_path: Path) -> None:
    tok = _pipeline(tmp_path)
    dedup_digest, dedup_rows = _digest(tmp_path / "dedup"), _rows(tmp_path / "dedup")
    shutil.rmtree(tmp_path / "dedup")
    chain = _chain(_lineage(tok))
    gone = chain[1]
    assert gone["available"] is False and gone["path"] == str(tmp_path / "dedup")
    assert "deleted" in gone["note"] and gone["note"].startswith("not available")
    assert (gone["digest"], gone["rows"]) == (dedup_digest, dedup_rows)  # as tokenize read it
    assert gone["stage"]["op"] == "dedup"
    assert chain[2]["available"] is True and chain[2]["digest"] == _digest(tmp_path / "shards")
    # the shards rewritten with other shard sizes: their digest no longer is the one read
    before = _digest(tmp_path / "shards")
    run_stage(
        "shard",
        {"format": "text", "lines": True, "shard_rows": 700},
        tmp_path / "shards",
        inputs=[str(LICENSES)],
    )
    changed = _chain(_lineage(tok))[2]
    assert changed["available"] is False and changed["digest"] == before
    assert f"its digest is now {_digest(tmp_path / 'shards')}" in changed["note"]
    assert _chain(_lineage(tok))[3]["kind"] == "raw"  # the chain still reaches the raw files
    text = cli("lineage", tok).stdout
    assert f"not available: {tmp_path / 'dedup'} was deleted" in text


def test_lineage_of_bad_paths_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path, words in ((tmp_path / "missing", "does not exist"), (tmp_path / "empty", "is not")):
        proc = cli("lineage", path, check=False)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_checkpoint_lineage_records_data_digests_version_config_and_reader(
    tok: Path, run: Path
) -> None:
    ckpt = run / "checkpoints" / "step-00000004"
    node = _lineage(ckpt)
    state = json.loads((ckpt / "train_state.json").read_text())
    assert node["kind"] == "checkpoint" and node["step"] == 4
    assert node["dataprep_version"] == __version__
    assert node["config"] == state["config"] and node["config"]["data"] == str(tok)
    assert node["reader"] == state["reader"] and node["reader"]["epoch"] == 0
    for role in ("train", "eval"):
        data = node["data"][role]
        assert data["digest"] == _digest(tok) and data["rows"] == _rows(tok)
        assert [n["stage"]["op"] for n in _chain(data)[:3]] == ["tokenize", "dedup", "shard"]
    assert node["privacy"] is None  # not a DP run
    whole = _lineage(run)  # a run directory: its newest checkpoint
    assert whole["step"] == 8 and whole["kept_checkpoints"] == ["step-00000004", "step-00000008"]


def _losses(path: Path) -> dict[tuple[int, str], float]:
    found = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for key in ("loss", "eval_loss"):
            if key in record:
                found[record["step"], key] = record[key]
    return found


@pytest.mark.slow
def test_resume_from_an_earlier_checkpoint_gives_the_original_losses(
    tok: Path, run: Path, tmp_path: Path
) -> None:
    """Roll back to step 4 of a finished 8-step run: steps 5-8 have the very losses the
    original run logged, and its step-8 checkpoint and log are kept, not deleted."""
    out = tmp_path / "run"
    shutil.copytree(run, out)
    original = _losses(run / "metrics.jsonl")
    late = (run / "checkpoints" / "step-00000008" / "checksums.json").read_text()
    more = ("--steps", "8", "--eval-dir", str(tok), "--eval-every", "4", "--eval-batches", "2")
    fork, ckpt = tmp_path / "fork", run / "checkpoints" / "step-00000004"
    # two independent resumes side by side: in place (a roll back), and into a new --out
    proc, _ = cli_all(
        ("train", tok, "--out", out, *TRAIN, *more, "--resume-from", "4"),
        ("train", tok, "--out", fork, *TRAIN, *more, "--resume-from", ckpt),
    )
    assert json.loads(proc.stdout)["step"] == 8
    assert "rolled" in proc.stderr and "step-00000008" in proc.stderr
    assert _losses(out / "metrics.jsonl") == original
    assert len([k for k in original if k[0] > 4]) == 5  # 4 losses and an eval compared
    [archive] = (out / "rollbacks").iterdir()
    kept = archive / "checkpoints" / "step-00000008" / "checksums.json"
    assert kept.read_text() == late  # the checkpoint rolled back over, untouched
    assert _losses(archive / "metrics.jsonl") == original
    # from a checkpoint of another run into a new --out (the original stays as it was)
    assert _losses(fork / "metrics.jsonl") == original
    assert _losses(run / "metrics.jsonl") == original and not (run / "rollbacks").exists()


@pytest.mark.slow
def test_resume_onto_changed_data_is_refused_unless_allowed(tok: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tok, data)
    out = tmp_path / "run"
    cli("train", data, "--out", out, *TRAIN, "--steps", "4")
    old = _digest(data)
    shutil.rmtree(data)
    # the checkpoint recorded its data's lineage: with the dataset gone the chain remains
    gone = _chain(_lineage(out)["data"]["train"])
    assert [n["kind"] for n in gone] == ["dataset", "dataset", "dataset", "raw"]
    assert gone[0]["available"] is False and "was deleted" in gone[0]["note"]
    assert (gone[0]["digest"], gone[0]["rows"]) == (old, _rows(tok))
    assert [n["digest"] for n in gone[1:3]] == [
        _digest(tok.parent / n) for n in ("dedup", "shards")
    ]
    # the same path, other data: tokenized straight from the shards
    run_stage("tokenize", {"seq_len": SEQ}, data, input_path=tok.parent / "shards")
    new = _digest(data)
    assert new != old
    # refused as it resumes, and before --resume-from moves anything: two refusals side by side
    refused, again = cli_all(
        ("train", data, "--out", out, *TRAIN, "--steps", "6"),
        ("train", data, "--out", out, *TRAIN, "--steps", "6", "--resume-from", "4"),
        check=False,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    [sentence] = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert old in sentence and new in sentence and "--allow-data-change" in sentence
    assert refused.stderr.strip() == sentence
    # the same refusal before --resume-from moves anything
    assert again.returncode == 2 and old in again.stderr and new in again.stderr
    allowed = cli("train", data, "--out", out, *TRAIN, "--steps", "6", "--allow-data-change")
    assert json.loads(allowed.stdout)["step"] == 6
    assert "changed data" in allowed.stderr and new in allowed.stderr
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    [event] = [r for r in records if r.get("event") == "data_change"]
    assert (event["step"], event["from"], event["to"]) == (4, old, new)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    node = _lineage(out)
    assert node["data"]["train"]["digest"] == new and node["reader"]["rows"] == _rows(data)
    assert [(c["step"], c["from"], c["to"]) for c in node["data_changes"]] == [(4, old, new)]


@pytest.mark.slow
def test_resume_from_refusals_are_one_sentence_and_move_nothing(
    tok: Path, run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    state = out / "checkpoints" / "step-00000004" / "state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    other = tmp_path / "other"
    shutil.copytree(run, other)
    cases = [
        ((out, "--resume-from", "99"), "kept: step-00000004, step-00000008"),
        ((out, "--resume-from", "4"), "state.pt checksum mismatch"),
        ((other, "--resume-from", run / "checkpoints" / "step-00000004"), "already holds"),
    ]
    procs = cli_all(  # refused before any rank starts: side by side
        *(
            ("train", tok, "--out", where, *TRAIN, "--steps", "8", *more)
            for (where, *more), _ in cases
        ),
        check=False,
    )
    for ((_, *more), words), proc in zip(cases, procs, strict=True):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert words in proc.stderr, (more, proc.stderr)
    for where in (out, other):  # nothing moved, nothing added
        assert sorted(p.name for p in (where / "checkpoints").iterdir()) == [
            "step-00000004",
            "step-00000008",
        ]
        assert not (where / "rollbacks").exists()


def test_recorded_locations_carry_no_credentials(tok: Path) -> None:
    """pyarrow takes S3 keys in a URI's query: a lineage entry (which travels with every later
    dataset) keeps the endpoint and region but never the keys."""
    from dataprep import dataset
    from dataprep.storage import as_path

    uri = "s3://b/shards?endpoint_override=h%3A9000&access_key=AK&secret_key=SK&region=eu-1"
    kept = "s3://b/shards?endpoint_override=h%3A9000&region=eu-1"
    flow = lineage.flow(as_path(uri), [], dataset.read_manifest(tok), {"rows_out": 3})
    assert flow == {"input": kept, "rows_in": _rows(tok), "rows_out": 3}
    raw = lineage.flow(None, [uri.replace("shards", "raw")], None, {"inputs": 1})
    assert raw["raw_inputs"] == [kept.replace("shards", "raw")] and raw["cwd"] is None
    assert "SK" not in json.dumps(raw) + json.dumps(flow)


def test_checkpoint_lineage_shows_the_privacy_budget(run: Path, tmp_path: Path) -> None:
    """What a DP-SGD run adds to its checkpoints (train/privacy.py's state) is shown as one
    line and passed through --json."""
    ckpt = tmp_path / "step-00000008"
    shutil.copytree(run / "checkpoints" / ckpt.name, ckpt)
    state = json.loads((ckpt / "train_state.json").read_text())
    state["privacy"] = {
        "epsilon_target": 3.0,
        "epsilon_spent": 2.98765,
        "delta": 1e-05,
        "max_grad_norm": 0.5,
        "noise_multiplier": 1.2345,
        "sample_rate": 0.01,
        "accountant": "rdp",
        "history": [[1.2345, 0.01, 8]],
    }
    (ckpt / "train_state.json").write_text(json.dumps(state))
    assert _lineage(ckpt)["privacy"] == state["privacy"]
    line = "differential privacy: epsilon 2.99 of 3 spent (delta 1e-05, clip 0.5, noise 1.23)"
    assert line in [x.strip() for x in lineage_text.lines(lineage.of(ckpt))]


def test_checkpoint_config_and_refusals_carry_no_credentials() -> None:
    """A checkpoint's recorded settings travel with the model, and the data-change refusal is
    also written to the run log: neither keeps the keys an S3 URI carries in its query."""
    from dataprep.train import provenance
    from dataprep.train.config import TrainConfig

    uri = "s3://b/tok?endpoint_override=h%3A9000&access_key=AK&secret_key=SK&region=eu-1"
    cfg = TrainConfig(data=uri, eval_dir=uri.replace("tok", "ev"), out=uri.replace("tok", "run"))
    recorded = provenance.recorded_config(cfg)
    assert recorded["data"] == "s3://b/tok?endpoint_override=h%3A9000&region=eu-1"
    assert "SK" not in json.dumps(recorded) and "AK" not in json.dumps(recorded)
    assert recorded["batch_size"] == cfg.batch_size  # the order-fixing settings stay
    sentence = provenance.refusal(cfg, "run", {"step": 4, "data": {"train": {"digest": "a"}}}, "b")
    assert sentence is not None and "endpoint_override" in sentence and "SK" not in sentence
