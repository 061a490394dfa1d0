"""The key-use audit log: every use of a key is one hash-chained record, from the CLI, from
DataLoader workers, from gloo ranks and from many processes at once; tampering is found."""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest
from helpers import cli, restored_env

from dataprep import audit
from dataprep.audit_use import REDACTED, command_line
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage

LICENSE = Path("/usr/share/common-licenses/GPL-3")


def _paragraphs() -> list[str]:
    text = LICENSE.read_text()
    return [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) > 8][:120]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plain")
    lines = [json.dumps({"text": p, "source": "gpl"}) for p in _paragraphs()]
    (root / "in.jsonl").write_text("\n".join(lines) + "\n")
    run_stage(
        "shard",
        {"shard_rows": 20},
        root / "shards",
        inputs=[str(root / "in.jsonl")],
        executor=LocalExecutor(1),
    )
    return root / "shards"


@pytest.fixture(scope="module")
def encrypted(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`plain` encrypted in-process under a fresh key file: (dataset, key file)."""
    from dataprep.crypto import generate_key_file

    root = tmp_path_factory.mktemp("encrypted")
    generate_key_file(root / "keys.json")
    run_stage(
        "encrypt",
        {"key_file": str(root / "keys.json")},
        root / "enc",
        input_path=plain,
        executor=LocalExecutor(1),
    )
    return root / "enc", root / "keys.json"


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _keys_b64(key_file: Path) -> list[str]:
    return list(json.loads(key_file.read_text())["keys"].values())


def _no_secrets(log: Path, key_file: Path) -> None:
    """No key (base64, hex or raw) and no sample text in the log."""
    data = log.read_bytes()
    for b64 in _keys_b64(key_file):
        raw = base64.b64decode(b64)
        assert b64.encode() not in data and raw.hex().encode() not in data and raw not in data
    for paragraph in _paragraphs()[:40]:
        assert paragraph[:40].encode() not in data


def test_cli_encrypt_and_decrypt_are_recorded_beside_the_key_file(
    plain: Path, tmp_path: Path
) -> None:
    from dataprep.crypto import generate_key_file

    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    inline = ("--executor", "local", "--workers", "1", "-q")
    cli("encrypt", plain, "-o", tmp_path / "enc", "--key-file", keys, *inline)
    cli("decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "--key-file", keys, *inline)
    log = Path(str(keys) + ".audit.jsonl")
    found = _records(log)
    # one process per command (inline executor): one use each, not one per shard
    assert [(r["action"], r["outcome"]) for r in found] == [("encrypt", "ok"), ("decrypt", "ok")]
    enc = json.loads((tmp_path / "enc" / ".manifest.json").read_text())["encryption"]
    ids = sorted({enc["footer_key_id"], *enc["column_keys"]})
    for r in found:
        assert r["dataset"] == str(tmp_path / "enc") and r["key_ids"] == ids
        assert r["columns"] == ["id", "source", "text"] and r["pid"] != os.getpid()
        assert r["user"] and r["host"] and r["key_file"] == str(keys)
        assert r["argv"][0] == "dataprep" and str(keys) in r["argv"]
    digest = hashlib.sha256((tmp_path / "enc" / ".manifest.json").read_bytes()).hexdigest()
    assert found[1]["manifest_sha256"] == digest and found[0]["manifest_sha256"] is None
    assert found[1]["prev"] == hashlib.sha256(log.read_bytes().split(b"\n")[0]).hexdigest()
    proc = cli("audit", "verify", log, "--json")
    assert json.loads(proc.stdout)["records"] == 2
    _no_secrets(log, keys)


def test_wrong_key_is_denied_and_the_log_moves_also_for_ray_tasks(
    encrypted: tuple[Path, Path], tmp_path: Path
) -> None:
    from dataprep.crypto import generate_key_file

    enc, keys = encrypted
    other = tmp_path / "other.json"
    generate_key_file(other)
    moved = tmp_path / "logs" / "central.jsonl"
    inline = ("--executor", "local", "--workers", "1", "-q")
    args = ("decrypt", enc, "-o", tmp_path / "dec", "--key-file", other, *inline)
    proc = cli(*args, "--audit-log", moved, check=False)
    assert proc.returncode == 2 and "has no key" in proc.stderr
    assert not Path(str(other) + ".audit.jsonl").exists()
    (denied,) = _records(moved)
    assert denied["outcome"] == "denied" and "has no key" in denied["reason"]
    assert denied["key_file"] == str(other) and denied["dataset"] == str(enc)
    # the env var moves it too, also for Ray workers (they inherit the driver's environment)
    ray = ("--executor", "ray", "--workers", "2", "-q")
    with restored_env([audit.ENV]):
        os.environ[audit.ENV] = str(moved)
        cli("decrypt", enc, "-o", tmp_path / "dec", "--key-file", keys, *ray)
    found = _records(moved)
    # the driver checks the key, then each Ray worker process that ran tasks: one use each
    assert [r["outcome"] for r in found][:2] == ["denied", "ok"] and len(found) >= 3
    assert len({r["pid"] for r in found}) == len(found)
    assert audit.verify(moved)[0] == len(found)
    _no_secrets(moved, keys)
    shown = json.loads(cli("audit", "show", moved, "--json", "--since", "1h").stdout)
    assert [r["seq"] for r in shown] == list(range(1, len(found) + 1))
    assert audit.select(found, dataset=str(enc.parent)) == found
    assert audit.select(found, dataset=str(tmp_path)) == []
    assert audit.select(found, since=audit.since_time("2099-01-01")) == []
    table = cli("audit", "show", moved).stdout
    assert "denied" in table and "has no key" in table


def test_an_unwritable_log_refuses_the_use(encrypted: tuple[Path, Path], tmp_path: Path) -> None:
    enc, keys = encrypted
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    inline = ("--executor", "local", "--workers", "1", "-q")
    args = ("decrypt", enc, "-o", tmp_path / "dec", "--key-file", keys, *inline)
    proc = cli(*args, "--audit-log", blocked / "audit.jsonl", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write the audit log" in proc.stderr and "--audit-log" in proc.stderr
    assert not (tmp_path / "dec" / ".manifest.json").exists()
    if os.geteuid() != 0:  # root writes into read-only directories anyway
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o555)
        proc = cli(*args, "--audit-log", ro / "audit.jsonl", check=False)
        assert proc.returncode == 2 and "cannot write the audit log" in proc.stderr


# --- many writers ---------------------------------------------------------------------------


def _hammer(log: str, worker: int, count: int) -> None:
    for i in range(count):
        audit.append(
            Path(log),
            {
                "time": "2026-01-01T00:00:00+00:00",
                "outcome": "ok",
                "action": "test",
                "dataset": f"/w{worker}/{i}",
                "key_ids": ["k"],
            },
        )


def test_processes_hammering_append_lose_and_interleave_nothing(tmp_path: Path) -> None:
    log, workers, each = tmp_path / "a.jsonl", 8, 60
    ctx = multiprocessing.get_context("fork")  # separate processes, each its own descriptor
    procs = [ctx.Process(target=_hammer, args=(str(log), w, each)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert audit.verify(log)[0] == workers * each
    got = sorted(r["dataset"] for r in _records(log))
    assert got == sorted(f"/w{w}/{i}" for w in range(workers) for i in range(each))
    assert [r["seq"] for r in _records(log)] == list(range(1, workers * each + 1))


def test_dataloader_workers_each_record_one_use(plain: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from helpers import encrypted_copy

    from dataprep.loader import ShardDataset, make_dataloader

    enc, keys = encrypted_copy(plain, tmp_path)
    log = tmp_path / "loader.jsonl"
    epochs, workers = 2, 2
    with restored_env([audit.ENV]):
        os.environ[audit.ENV] = str(log)
        ds = ShardDataset(str(enc), columns=["text"], batch_size=4, key_file=str(keys))
        seen = 0
        for epoch in range(epochs):  # new worker processes each epoch
            ds.set_epoch(epoch)
            for batch in make_dataloader(ds, num_workers=workers):
                seen += len(batch["text"])
    assert seen == epochs * len(_paragraphs())
    found = _records(log)
    readers = [r for r in found if r["pid"] != os.getpid()]
    # oracle: epochs x workers processes, one use each (the main process reads nothing)
    assert len(readers) == epochs * workers and len({r["pid"] for r in readers}) == len(readers)
    assert len(found) == len(readers)
    assert all(r["outcome"] == "ok" and r["columns"] == ["text"] for r in found)
    assert audit.verify(log)[0] == len(found)
    _no_secrets(log, keys)
    del torch


# --- tampering ------------------------------------------------------------------------------


def _chain(tmp_path: Path, n: int = 5) -> Path:
    log = tmp_path / "chain.jsonl"
    _hammer(str(log), 0, n)
    return log


def _verify_fails_at(log: Path, line: int, why: str, command: bool = False) -> None:
    """`audit.verify` (and with `command`, `dataprep audit verify`) names line `line`."""
    with pytest.raises(audit.VerifyError) as failed:
        audit.verify(log)
    assert f"record {line} (line {line})" in str(failed.value) and why in str(failed.value)
    if command:
        proc = cli("audit", "verify", log, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"record {line} (line {line})" in proc.stderr and why in proc.stderr
        bad = json.loads(cli("audit", "verify", log, "--json", check=False).stdout)["bad"]
        assert bad["line"] == line


def _rewrite(log: Path, lines: list[str]) -> None:
    log.write_text("".join(line + "\n" for line in lines))


def test_edited_field_is_found_at_that_record(tmp_path: Path) -> None:
    log = _chain(tmp_path)
    lines = log.read_text().splitlines()
    lines[2] = lines[2].replace('"outcome":"ok"', '"outcome":"no"')
    _rewrite(log, lines)
    _verify_fails_at(log, 3, "was edited", command=True)


def test_edit_with_recomputed_digest_is_found_at_the_next_record(tmp_path: Path) -> None:
    log = _chain(tmp_path)
    lines = log.read_text().splitlines()
    record = json.loads(lines[1]) | {"dataset": "/elsewhere"}
    record["digest"] = audit.record_digest(record)
    lines[1] = audit.canonical(record).decode()
    _rewrite(log, lines)
    _verify_fails_at(log, 3, "prev digest does not match")


def test_deleted_line_is_found(tmp_path: Path) -> None:
    log = _chain(tmp_path)
    lines = log.read_text().splitlines()
    del lines[1]
    _rewrite(log, lines)
    _verify_fails_at(log, 2, "removed")


def test_swapped_lines_are_found(tmp_path: Path) -> None:
    log = _chain(tmp_path)
    lines = log.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(log, lines)
    _verify_fails_at(log, 3, "reordered")


def test_line_cut_short_is_found_and_later_appends_stay_visible(tmp_path: Path) -> None:
    log = _chain(tmp_path)
    data = log.read_bytes()
    log.write_bytes(data[: len(data) - 40])  # the last record cut mid-line
    _verify_fails_at(log, 5, "not a complete JSON record")
    _hammer(str(log), 1, 1)  # a later writer starts a new line; the cut stays reported
    assert log.read_text().splitlines()[5].startswith('{"action"')
    _verify_fails_at(log, 5, "not a complete JSON record")


def test_removed_tail_is_found_only_with_an_anchored_head(tmp_path: Path) -> None:
    log = _chain(tmp_path)
    head = cli("audit", "show", log, "--head").stdout.split()
    assert head[0] == "5" and audit.verify(log, head=head[1])[0] == 5
    _rewrite(log, log.read_text().splitlines()[:4])
    assert audit.verify(log)[0] == 4  # the chain alone cannot tell
    proc = cli("audit", "verify", log, "--head", head[1], check=False)
    assert proc.returncode == 1 and "anchored head" in proc.stderr


def test_command_line_never_keeps_secret_option_values() -> None:
    argv = ["/x/dataprep", "encrypt", "IN", "--key", "c2VjcmV0", "--key-file", "k.json"]
    argv += ["--set", "vars.api_key=c2VjcmV0", "--token=abc", "--tokenizer", "t.json"]
    argv += ["--audit-log", "a.jsonl", "--Password", "hunter2"]
    assert command_line(argv) == [
        "dataprep",
        "encrypt",
        "IN",
        "--key",
        REDACTED,
        "--key-file",
        "k.json",
        "--set",
        f"vars.api_key={REDACTED}",
        f"--token={REDACTED}",
        "--tokenizer",
        "t.json",
        "--audit-log",
        "a.jsonl",
        "--Password",
        REDACTED,
    ]


RANKS_SCRIPT = """
import os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def rank_main(rank, world, data, keys, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from dataprep.loader import ShardDataset, make_dataloader

    ds = ShardDataset(data, columns=["text"], batch_size=4, key_file=keys, rank=rank,
                      world_size=world)
    rows = torch.tensor([sum(len(b["text"]) for b in make_dataloader(ds, num_workers=2))])
    dist.all_reduce(rows)
    if rank == 0:
        open(out, "w").write(str(int(rows)))
    dist.destroy_process_group()


if __name__ == "__main__":
    from dataprep.loader import ShardDataset  # noqa: F401 - imported once, before the fork

    mp.start_processes(rank_main, args=(2, *sys.argv[1:5]), nprocs=2, start_method="fork")
"""


def test_two_gloo_ranks_with_two_loader_workers_each_record_their_use(
    encrypted: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    import socket
    import subprocess
    import sys

    enc, keys = encrypted
    log, script, rows = tmp_path / "ranks.jsonl", tmp_path / "ranks.py", tmp_path / "rows"
    script.write_text(RANKS_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, audit.ENV: str(log)}
    args = [sys.executable, script, enc, keys, port, rows]
    subprocess.run(list(map(str, args)), env=env, check=True, timeout=300)
    assert int(rows.read_text()) == len(_paragraphs())  # every row read once across ranks
    reads = _records(log)
    ranks, workers = 2, 2
    # oracle: ranks x DataLoader workers processes read the data, one use each
    assert len(reads) == ranks * workers and len({r["pid"] for r in reads}) == ranks * workers
    assert all(r["action"] == "decrypt" and r["outcome"] == "ok" for r in reads)
    assert all(r["columns"] == ["text"] for r in reads)
    assert {r["dataset"] for r in reads} == {str(enc)}
    assert audit.verify(log)[0] == ranks * workers
    _no_secrets(log, keys)


def test_same_key_ids_with_other_bytes_are_denied(
    encrypted: tuple[Path, Path], tmp_path: Path
) -> None:
    from dataprep.loader import ShardDataset

    enc, keys = encrypted
    forged = tmp_path / "forged.json"
    doc = json.loads(keys.read_text())
    doc["keys"] = {k: base64.b64encode(os.urandom(32)).decode() for k in doc["keys"]}
    forged.write_text(json.dumps(doc))
    log = tmp_path / "forged.jsonl"
    with restored_env([audit.ENV]):
        os.environ[audit.ENV] = str(log)
        with pytest.raises(Exception, match="does not unwrap"):
            list(ShardDataset(str(enc), columns=["text"], key_file=str(forged)))
    (record,) = _records(log)
    assert record["outcome"] == "denied" and record["pid"] == os.getpid()
    assert "does not unwrap" in record["reason"] and record["columns"] == ["text"]
    _no_secrets(log, forged)


@pytest.fixture(scope="module")
def per_column(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """`plain` with text and id under their own keys: (dataset, full key file, id-only file)."""
    root = tmp_path_factory.mktemp("per_column")
    keys, lab = root / "k.keys", root / "lab.keys"
    cli("keygen", "-o", keys, "--keys", "text,id")
    inline = ("--executor", "local", "--workers", "1", "-q")
    args = ("--key-file", keys, "--columns", "text:text,id:id", *inline)
    cli("encrypt", plain, "-o", root / "enc", *args)
    cli("keys", "export-subset", keys, "--keys", "id", "-o", lab)
    return root / "enc", keys, lab


def _ids_for(enc: Path, *columns: str) -> list[str]:
    info = json.loads((enc / ".manifest.json").read_text())["encryption"]
    keyed = [k for k, cols in info["column_keys"].items() if set(cols) & set(columns)]
    return sorted([info["footer_key_id"], *keyed])


def test_records_name_the_columns_and_keys_actually_read(per_column, tmp_path: Path) -> None:
    enc, keys, lab = per_column
    log = tmp_path / "read.jsonl"
    with restored_env([audit.ENV]):
        os.environ[audit.ENV] = str(log)
        cli("head", enc, "-n", "2", "--key-file", lab)  # a partial key file: only id
        cli("head", enc, "-n", "1", "--key-file", keys, "--columns", "id")
        cli("export", enc, "-o", tmp_path / "ids.jsonl", "--key-file", keys, "--columns", "id")
    found = _records(log)
    assert [(r["outcome"], r["columns"], r["argv"][1]) for r in found] == [
        ("ok", ["id"], "head"),
        ("ok", ["id"], "head"),
        ("ok", ["id"], "export"),
    ]
    assert all(r["key_ids"] == _ids_for(enc, "id") for r in found)
    assert [r["key_file"] for r in found] == [str(lab), str(keys), str(keys)]


def test_a_refused_column_or_key_file_is_recorded(per_column, tmp_path: Path) -> None:
    enc, keys, lab = per_column
    other = tmp_path / "other.json"
    cli("keygen", "-o", other)
    log = tmp_path / "refused.jsonl"
    with restored_env([audit.ENV]):
        os.environ[audit.ENV] = str(log)
        runs = [
            ("head", enc, "--key-file", lab, "--columns", "text"),
            ("export", enc, "-o", tmp_path / "x.jsonl", "--key-file", lab, "--columns", "text"),
            ("decrypt", enc, "-o", tmp_path / "dec", "--key-file", lab, "-q", "-w", "1"),
            ("head", enc, "--key-file", other),
        ]
        for args in runs:
            proc = cli(*args, check=False)
            assert proc.returncode == 2, proc.stderr
    refused = [r for r in _records(log) if r["outcome"] != "ok"]
    assert [(r["argv"][1], r["outcome"]) for r in refused] == [
        ("head", "denied"),
        ("export", "denied"),
        ("decrypt", "denied"),
        ("head", "denied"),
    ]
    text = _ids_for(enc, "text")
    assert refused[0]["columns"] == ["text"] and refused[0]["key_ids"] == text
    assert refused[1]["columns"] == ["text"] and refused[1]["key_ids"] == text
    assert "does not hold" in refused[2]["reason"] and refused[2]["columns"] == ["id", "text"]
    assert "has no key" in refused[3]["reason"] and refused[3]["key_file"] == str(other)
    assert audit.verify(log)[0] == len(_records(log))
    _no_secrets(log, keys)


def test_key_rotation_is_recorded_in_both_keys_logs(plain: Path, tmp_path: Path) -> None:
    from dataprep.crypto import generate_key_file

    keys, new = tmp_path / "old.keys", tmp_path / "new.keys"
    generate_key_file(keys)
    generate_key_file(new)
    inline = LocalExecutor(1)
    run_stage(
        "encrypt", {"key_file": str(keys)}, tmp_path / "enc", input_path=plain, executor=inline
    )
    cli("keys", "rotate", tmp_path / "enc", "--key-file", keys, "--new-key-file", new)
    old_log, new_log = Path(f"{keys}.audit.jsonl"), Path(f"{new}.audit.jsonl")
    old_actions = [(r["action"], r["outcome"]) for r in _records(old_log)]
    assert old_actions[0] == ("encrypt", "ok") and ("rotate-from", "ok") in old_actions
    rotated = [r for r in _records(new_log) if r["action"] == "rotate"]
    assert len(rotated) == 1 and rotated[0]["outcome"] == "ok"
    manifest = tmp_path / "enc" / ".manifest.json"
    enc = json.loads(manifest.read_text())["encryption"]
    assert rotated[0]["key_ids"] == sorted({enc["footer_key_id"], *enc["column_keys"]})
    assert rotated[0]["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert audit.verify(old_log) and audit.verify(new_log)
    _no_secrets(old_log, keys)
    _no_secrets(new_log, new)


def test_head_and_export_take_audit_log(per_column, tmp_path: Path) -> None:
    enc, keys, _ = per_column
    head_log, export_log = tmp_path / "head.jsonl", tmp_path / "export.jsonl"
    cli("head", enc, "-n", "1", "--key-file", keys, "--audit-log", head_log)
    out = tmp_path / "all.jsonl"
    cli("export", enc, "-o", out, "--key-file", keys, "--audit-log", export_log)
    assert [r["argv"][1] for r in _records(head_log)] == ["head"]
    (exported,) = _records(export_log)
    assert exported["columns"] == ["id", "text"] and exported["key_ids"] == _ids_for(
        enc, "id", "text"
    )


def test_report_and_keys_rotate_take_audit_log(plain: Path, tmp_path: Path) -> None:
    """Like every command that uses a key: --audit-log moves the records, none go beside the
    key files."""
    from dataprep.crypto import generate_key_file

    keys, new = tmp_path / "old.keys", tmp_path / "new.keys"
    generate_key_file(keys)
    generate_key_file(new)
    enc = tmp_path / "enc"
    run_stage("encrypt", {"key_file": str(keys)}, enc, input_path=plain, executor=LocalExecutor(1))
    report_log, rotate_log = tmp_path / "report.jsonl", tmp_path / "rotate.jsonl"
    page = tmp_path / "r.html"
    cli("report", enc, "-o", page, "--key-file", keys, "--audit-log", report_log)
    cli("keys", "rotate", enc, "-k", keys, "--new-key-file", new, "--audit-log", rotate_log)
    reported = _records(report_log)
    assert reported and {(r["argv"][1], r["outcome"]) for r in reported} == {("report", "ok")}
    rotated = {(r["action"], r["outcome"]) for r in _records(rotate_log)}
    assert {("rotate-from", "ok"), ("rotate", "ok")} <= rotated
    assert [r["action"] for r in _records(Path(f"{keys}.audit.jsonl"))] == ["encrypt"]
    assert not Path(f"{new}.audit.jsonl").exists()
    assert audit.verify(report_log) and audit.verify(rotate_log)
