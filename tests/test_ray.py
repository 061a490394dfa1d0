"""Ray executor on a real local Ray cluster: same output as the process pool, retries, resume.

One `ray start --head` per module (2 CPUs); the CLI runs connect to it with --address, and the
in-process tests connect the test process as a Ray driver. The retry tests use a test-only stage
(tests/flaky_stage.py) whose tasks raise or SIGKILL their own worker on the first attempt.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flaky_stage import attempts
from helpers import cli, column, manifest, restored_env

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.progress import Reporter
from dataprep.runner import run_stage

pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",  # a fresh test cluster; no token file to share
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


CLIENT_ADDRESS: list[str] = []  # the test cluster's Ray Client endpoint, once it runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Processes in the session `ray start` was given: the head, GCS, raylet and workers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if (
            int(fields[3]) == sid and fields[0] != "Z"
        ):  # after "pid (comm)": state ppid pgrp session
            pids.append(int(entry.name))
    return pids


def _kill_session(sid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (1 if sig == signal.SIGTERM else 5)
        while _session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _session_pids(sid):
            return


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[str]:
    """The cluster starts after the S3 server, so its workers inherit the endpoint and keys."""
    with restored_env([*RAY_ENV, "PYTHONPATH"]):
        os.environ.update(RAY_ENV)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ["PYTHONPATH"]])
        port, client_port = _free_port(), _free_port()
        log = tmp_path_factory.mktemp("ray") / "head.log"
        head = subprocess.Popen(
            [shutil.which("ray") or "ray", "start", "--head", "--block"]
            + ["--num-cpus", "2", "--port", str(port), "--include-dashboard=false"]
            + ["--ray-client-server-port", str(client_port), "--disable-usage-stats"],
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "Ray runtime started" not in log.read_text():
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start failed:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            CLIENT_ADDRESS.append(f"ray://127.0.0.1:{client_port}")
            yield f"127.0.0.1:{port}"
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            _kill_session(head.pid)
            head.wait(timeout=10)


def _shards(path: Path) -> list[tuple[str, int, str]]:
    return [(s["path"], s["rows"], s["xxh3_128"]) for s in manifest(path)["shards"]]


RECIPE = """
version: 1
name: ray-vs-local
vars: {{root: {root}}}
input: {{path: {corpus}, text_column: text}}
executor: {{kind: ray, address: "{address}", cpus_per_task: 1, max_retries: 1}}
stages:
  - {{id: shards, op: shard, params: {{shard_rows: 200}}}}
  - {{id: exact, op: dedup, input: shards, params: {{method: exact}}}}
  - {{id: near, op: dedup, input: shards, params: {{method: minhash, threshold: 0.8}}}}
  - {{id: balanced, op: resample, input: shards,
      params: {{label: label, strategy: oversample, max_ratio: 10, seed: 0}}}}
  - {{id: even, op: rebalance, input: shards, params: {{shards: 3, shuffle: true, seed: 1}}}}
  - {{id: parts, op: partition, input: shards, params: {{key: id, partitions: 4}}}}
  - {{id: packed, op: compress, input: shards, params: {{codec: zstd, level: 9}}}}
  - {{id: tokens, op: tokenize, input: near, params: {{seq_len: 128}}}}
"""
STAGE_IDS = ["shards", "exact", "near", "balanced", "even", "parts", "packed", "tokens"]


def test_recipe_on_ray_matches_local_pool(ray_address: str, corpus_dir: Path, tmp_path: Path):
    """Every deterministic stage writes byte-identical shards on Ray and on 2 local workers."""
    for name in ("ray", "local"):
        text = RECIPE.format(root=tmp_path / name, corpus=corpus_dir, address=ray_address)
        (tmp_path / f"{name}.yaml").write_text(text)
    cli("run", tmp_path / "ray.yaml", "-q")  # the recipe's own executor: kind ray
    cli("run", tmp_path / "local.yaml", "--executor", "local", "-w", "2", "-q")
    for stage_id in STAGE_IDS:
        ray_out, local_out = tmp_path / "ray" / stage_id, tmp_path / "local" / stage_id
        assert _shards(ray_out) == _shards(local_out), stage_id
        assert len(_shards(ray_out)) > 0
    source_ids = column(tmp_path / "local" / "shards", "id")
    for stage_id in ("exact", "near"):
        kept_ray = column(tmp_path / "ray" / stage_id, "id")
        kept_local = column(tmp_path / "local" / stage_id, "id")
        assert set(kept_ray) == set(kept_local)
        assert len(set(kept_ray)) == len(kept_ray) < len(source_ids)  # it did remove rows
    # the run's lineage is the same too, so `dataprep run` on the other executor is a no-op
    again = cli("run", tmp_path / "ray.yaml", "--executor", "local", "--json")
    assert '"status": "cached"' in again.stdout and '"status": "ran"' not in again.stdout


@pytest.mark.slow
def test_recipe_on_ray_with_s3_storage(
    ray_address: str, s3_bucket: str, corpus_dir: Path, tmp_path: Path
):
    """Ray tasks read and write every shard and scratch file (dedup bands, edges) on s3."""
    for name, root in (("s3", f"{s3_bucket}/work"), ("local", str(tmp_path / "local"))):
        head, body = RECIPE.format(root=root, corpus=corpus_dir, address=ray_address).split(
            "stages:\n"
        )
        stages = body.splitlines()[:5]  # shards, exact, near, balanced (two lines)
        (tmp_path / f"{name}.yaml").write_text(head + "stages:\n" + "\n".join(stages) + "\n")
    cli("run", tmp_path / "s3.yaml", "-q")
    cli("run", tmp_path / "local.yaml", "--executor", "local", "-w", "2", "-q")
    for stage_id in ("shards", "exact", "near", "balanced"):
        remote = dataset.read_manifest(f"{s3_bucket}/work/{stage_id}")
        local = dataset.read_manifest(str(tmp_path / "local" / stage_id))
        assert [s.xxh3_128 for s in remote.shards] == [s.xxh3_128 for s in local.shards]
        assert remote.shards, stage_id


def test_stage_command_on_ray(ray_address: str, corpus_dir: Path, tmp_path: Path):
    """A single stage command with --executor ray matches the same command run locally."""
    common = ["shard", corpus_dir, "--shard-rows", "300", "-q"]
    cli(*common, "--out", tmp_path / "local", "-w", "2")
    cli(*common, "--out", tmp_path / "ray", "--executor", "ray", "--address", ray_address)
    assert _shards(tmp_path / "ray") == _shards(tmp_path / "local")


def test_stage_command_through_ray_client(ray_address: str, corpus_dir: Path, tmp_path: Path):
    """`--address ray://HOST:PORT` (Ray Client) runs the same tasks remotely: same shards."""
    client = CLIENT_ADDRESS[-1]
    cli(
        "shard",
        corpus_dir,
        "-o",
        tmp_path / "client",
        "--shard-rows",
        "300",
        "--executor",
        "ray",
        "--address",
        client,
        "-q",
    )
    cli("shard", corpus_dir, "-o", tmp_path / "local", "--shard-rows", "300", "-w", "2", "-q")
    assert _shards(tmp_path / "client") == _shards(tmp_path / "local")


def test_progress_ticks_reach_the_driver(ray_address: str, corpus_dir: Path, tmp_path: Path):
    """Rows ticked inside Ray tasks add up in the driver's reporter as they do locally."""
    seen = {}
    for kind in ("local", "ray"):
        reporter = Reporter(quiet=True)  # quiet still counts rows
        with _executor(kind, ray_address) as executor:
            run_stage(
                "shard",
                {"shard_rows": 300},
                tmp_path / kind,
                inputs=[str(corpus_dir)],
                executor=executor,
                reporter=reporter,
            )
        seen[kind] = reporter.rows
    assert seen["ray"] == seen["local"] > 0


def test_more_cpus_per_task_than_the_cluster_has(ray_address: str):
    with pytest.raises(DataprepError, match="more than the Ray cluster's 2 CPUs"):
        make_executor("ray", address=ray_address, cpus_per_task=3)


def test_address_without_ray_executor_is_a_user_error(tmp_path: Path, corpus_dir: Path):
    proc = cli("shard", corpus_dir, "--out", tmp_path / "o", "--address", "auto", check=False)
    assert proc.returncode == 2
    assert "--address needs --executor ray" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_ray_is_one_sentence(tmp_path: Path, corpus_dir: Path):
    """Without Ray installed (import blocked), --executor ray says what to install."""
    code = "import sys; sys.modules['ray'] = None; from dataprep.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "shard", str(corpus_dir), "--out", str(tmp_path / "o")]
        + ["--executor", "ray"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "pip install 'dataprep[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def _executor(kind: str, address: str, max_retries: int = 2):
    if kind == "ray":
        return make_executor("ray", address=address, max_retries=max_retries)
    return make_executor("local", workers=2, max_retries=max_retries)


def _values(out: Path) -> list[int]:
    return sorted(column(out, "value"))


@pytest.mark.parametrize("kind", ["local", "ray"])
@pytest.mark.parametrize("mode", ["raise_once", "kill_once"])
def test_failed_attempt_is_retried(kind: str, mode: str, flaky: Path, ray_address: str, tmp_path):
    config = {"mode": mode, "marker_dir": str(flaky), "tasks": 4, "fail_index": 1}
    with _executor(kind, ray_address) as executor:
        run = run_stage("flaky", config, tmp_path / "out", executor=executor)
    assert run.status == "ran"
    assert attempts(flaky, 1) >= 2  # the first attempt failed, a later one wrote the shard
    assert _values(tmp_path / "out") == list(range(40))


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_user_error_is_not_retried(kind: str, flaky: Path, ray_address: str, tmp_path: Path):
    config = {"mode": "user_error", "marker_dir": str(flaky), "tasks": 3, "fail_index": 0}
    with _executor(kind, ray_address) as executor:
        with pytest.raises(DataprepError, match="a user error"):
            run_stage("flaky", config, tmp_path / "out", executor=executor)
    assert attempts(flaky, 0) == 1
    assert not (tmp_path / "out" / ".manifest.json").exists()


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_failed_stage_leaves_no_manifest_and_resumes(
    kind: str, flaky: Path, ray_address: str, tmp_path: Path
):
    out = tmp_path / "out"
    config = {"mode": "always", "marker_dir": str(flaky), "tasks": 6, "fail_index": 2}
    (flaky / "broken").touch()
    with _executor(kind, ray_address, max_retries=1) as executor:
        with pytest.raises(RuntimeError, match="broken until"):
            run_stage("flaky", config, out, executor=executor)
    assert attempts(flaky, 2) == 2  # the first try and one retry
    assert not (out / ".manifest.json").exists()
    finished = {int(p.stem.split("-")[1]) for p in (out / ".dataprep" / "tasks").glob("*.json")}
    assert 2 not in finished
    before = {i: attempts(flaky, i) for i in range(6)}

    (flaky / "broken").unlink()  # "fix" the cause without changing the config
    with _executor(kind, ray_address) as executor:
        run = run_stage("flaky", config, out, executor=executor)
    assert run.status == "ran"
    rerun = {i for i in range(6) if attempts(flaky, i) > before[i]}
    assert rerun == set(range(6)) - finished  # only the unfinished tasks ran again
    assert _values(out) == list(range(60))
    assert (out / ".manifest.json").exists()


@pytest.mark.slow
def test_ray_without_address_starts_and_stops_a_local_ray(corpus_dir: Path, tmp_path: Path):
    env = {**os.environ, **RAY_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "dataprep", "shard", str(corpus_dir), "--out", str(tmp_path / "o")]
        + ["--executor", "ray", "-w", "1", "-q", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert manifest(tmp_path / "o")["shards"]


@pytest.mark.slow
def test_task_counts_and_retries_reach_the_metrics_endpoint(
    flaky: Path, ray_address: str, tmp_path: Path
) -> None:
    """On Ray, rows come through the tick actor and a raised attempt is counted by the task
    itself (a retry while Ray has attempts left); scraped in-process as --metrics-port serves.
    (On this module's cluster: a second local Ray started in the test process broke it.)"""
    from test_metrics import parse, total

    from dataprep.observe import metrics, stage_metrics
    from dataprep.sample import generate_corpus

    stage_metrics.enable()
    generate_corpus(tmp_path / "raw", docs=300, seed=2, malformed=3)
    config = {"mode": "raise_once", "marker_dir": str(flaky), "tasks": 4, "fail_index": 2}
    with make_executor("ray", address=ray_address) as executor:
        run_stage("flaky", config, tmp_path / "out", executor=executor, stage_id="ray-flaky")
        sharded = run_stage(
            "shard", {"shard_rows": 50}, tmp_path / "shards", inputs=[str(tmp_path / "raw")],
            executor=executor, stage_id="ray-shard",
        )  # fmt: skip
    samples, _ = parse(metrics.scrape())
    assert total(samples, "dataprep_stage_task_failures_total", stage="ray-flaky") == 1
    assert total(samples, "dataprep_stage_task_retries_total", stage="ray-flaky") == 1
    assert total(samples, "dataprep_stage_tasks_done_total", stage="ray-flaky") == 4
    rows = total(samples, "dataprep_stage_rows_total", stage="ray-shard")
    assert rows == sharded.report["rows_out"] == 300
    quarantined = total(samples, "dataprep_stage_quarantined_rows_total", stage="ray-shard")
    assert quarantined == sharded.report["quarantined"] == 3
