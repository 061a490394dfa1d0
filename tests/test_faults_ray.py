"""A Ray worker node lost mid-stage, on a real multi-node Ray cluster on this machine.

`ray.cluster_utils.Cluster` starts a head with no CPUs (so every task runs on a worker) and two
1-CPU worker nodes, each its own raylet and object store; the test process is the Ray driver.
A node is removed with SIGKILL (no graceful drain) while a stage writes to the moto S3 server,
and the output must match a local run shard for shard: Ray retries the lost tasks, or the stage
fails with one sentence and a rerun resumes. The slow-task stage below is test-only; Ray
workers import it from this module (tests/ is on their PYTHONPATH).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import zstandard
from helpers import cli, restored_env

from dataprep import dataset, stages
from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import StageRun, run_stage
from dataprep.stage import Stage, StageConfig, StageContext, StageResult, Task, TaskResult
from dataprep.storage import as_path

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}  # small: 3 raylets on a 2-core box
# The GCS declares a silent node dead after ~1.5 s instead of Ray's default ~30 s.
FAST_DEATH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}
# A task lost with no retries: its node's death, or its worker's if Ray heard of that first.
LOST_IN_ONE_TRY = r"did not finish in 1 attempt .*: its Ray (node|worker process) died"


@pytest.fixture(scope="module")
def cluster(s3_server: str) -> Iterator[Cluster]:
    """Head (0 CPUs) + 2 workers; started after the S3 server so raylets inherit its endpoint."""
    with restored_env([*RAY_ENV, "PYTHONPATH"]):
        os.environ.update(RAY_ENV)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ["PYTHONPATH"]])
        head = {**NODE, "num_cpus": 0, "include_dashboard": False, "_system_config": FAST_DEATH}
        test_cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            for _ in range(2):
                test_cluster.add_node(**NODE)
            ray.init(address=test_cluster.address, log_to_driver=False, logging_level="ERROR")
            yield test_cluster
        finally:
            ray.shutdown()
            test_cluster.shutdown()


@pytest.fixture
def workers(cluster: Cluster) -> list[Any]:
    """Two live worker nodes at the start of every test (a test may have removed some)."""
    while len(cluster.worker_nodes) < 2:
        cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    return sorted(cluster.worker_nodes, key=lambda node: node.node_id)


def _kill(cluster: Cluster, node: Any) -> None:
    """SIGKILL every process of `node` (raylet, object store, its workers): no graceful drain."""
    cluster.remove_node(node, allow_graceful=False)


class _Driver(threading.Thread):
    """Runs stages on the cluster (this process is the Ray driver) while the test kills nodes."""

    def __init__(self, body: Callable[[], Any]):
        super().__init__(daemon=True)
        self.body = body
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.body()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def outcome(self, timeout: float = 180) -> Any:
        self.join(timeout)
        assert not self.is_alive(), f"the stage did not finish within {timeout:g} s (a hang)"
        if self.error is not None:
            raise self.error
        return self.result


def _wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _wait_for(condition: Callable[[], bool], driver: _Driver, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert driver.is_alive(), f"the stage ended before {what} (error: {driver.error!r})"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _records(out: str) -> int:
    """Task results the stage has committed so far (its resume records)."""
    return len((as_path(out) / dataset.WORK_DIR / "tasks").iterdir())


def _shards(path: str | Path) -> list[tuple[str, int, str]]:
    return [(s.path, s.rows, s.xxh3_128) for s in dataset.read_manifest(path).shards]


def _assert_same_dataset(remote: str, local: Path) -> None:
    """Same shards (names, rows, checksums) as the local run; nothing lost or listed twice."""
    shards = _shards(remote)
    assert shards == _shards(local)
    assert len({path for path, _, _ in shards}) == len(shards)
    assert dataset.verify_dataset(remote).rows == dataset.read_manifest(local).rows


@pytest.fixture(scope="module")
def jsonl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain JSONL (no malformed lines), which `shard` splits into many tasks (chunk_bytes)."""
    from dataprep.sample import generate_corpus

    packed, out = tmp_path_factory.mktemp("zst"), tmp_path_factory.mktemp("jsonl")
    generate_corpus(packed, docs=1500, seed=3, malformed=0)
    for source in sorted(packed.glob("*.jsonl.zst")):
        with source.open("rb") as raw:
            data = zstandard.ZstdDecompressor().stream_reader(raw).read()
        (out / source.name.removesuffix(".zst")).write_bytes(data)
    return out


SHARD = {"shard_rows": 200, "chunk_bytes": 64 * 1024}  # 33 read tasks, 33 shards
EXACT = {"method": "exact"}


def _shard_then_dedup(root: str, source: Path, executor: Any) -> list[StageRun]:
    shards = run_stage("shard", SHARD, f"{root}/shards", inputs=[str(source)], executor=executor)
    exact = run_stage("dedup", EXACT, f"{root}/exact", input_path=shards.out, executor=executor)
    return [shards, exact]


# --- a test-only stage whose tasks take long enough for a kill to land inside one ---------

SLOW_SCHEMA = pa.schema([("task", pa.int64()), ("value", pa.int64())])


class SlowConfig(StageConfig):
    marker_dir: str  # local (every node is on this machine): who started/finished what, where
    tasks: int = 8
    seconds: float = 0.6
    result_bytes: int = 0  # results over Ray's 100 KiB inline limit stay in the node's store


def _index(marker: Path) -> int:
    return int(marker.name.split("-")[1])


def _committed(out: str) -> set[int]:
    """Indices of the tasks whose result records the stage has written."""
    names = [p.name for p in (as_path(out) / dataset.WORK_DIR / "tasks").iterdir()]
    return {int(name.split("-")[1].split(".")[0]) for name in names if name.startswith("map-")}


def _markers(marker_dir: str | Path, kind: str, index: int | str = "*", node: str = "*"):
    return sorted(Path(marker_dir).glob(f"{kind}-{index}-{node}-*"))


def _finished_on(marker_dir: Path, node: Any) -> set[int]:
    return {_index(p) for p in _markers(marker_dir, "done", node=node.node_id)}


def _slow_task(task: Task) -> TaskResult:
    config: SlowConfig = task.config
    node = ray.get_runtime_context().get_node_id()
    mark = Path(config.marker_dir)
    (mark / f"start-{task.index}-{node}-{uuid.uuid4().hex[:8]}").touch()
    time.sleep(config.seconds)
    values = pa.array(range(task.index * 10, task.index * 10 + 10), pa.int64())
    table = pa.table({"task": pa.array([task.index] * 10, pa.int64()), "value": values})
    writer = ShardWriter(task.out / f"part-{task.index:05d}.parquet", SLOW_SCHEMA)
    writer.write(table)
    shard = writer.close()
    (mark / f"done-{task.index}-{node}-{uuid.uuid4().hex[:8]}").touch()
    return TaskResult(shards=[shard], counts={"rows": 10}, extra="x" * config.result_bytes)


class SlowStage(Stage):
    name = "slowfault"
    Config = SlowConfig
    reads_dataset = False

    def input_digest(self, config: StageConfig, inputs: Any) -> str:
        return "slow-fault-input"

    def run(self, ctx: StageContext) -> StageResult:
        config: SlowConfig = ctx.config  # type: ignore[assignment]
        results = ctx.map(_slow_task, [ctx.task("map", i, []) for i in range(config.tasks)])
        return StageResult([s for r in results for s in r.shards], SLOW_SCHEMA, {})


def _assert_same_as_local(out: str, config: dict[str, Any], tmp_path: Path) -> None:
    """The same stage run in this process, without the sleeps (output does not depend on them)."""
    local = tmp_path / "local"
    with make_executor("local", workers=1) as executor:
        run_stage(SlowStage.name, {**config, "seconds": 0}, local, executor=executor)
    _assert_same_dataset(out, local)


@pytest.fixture
def slow_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(stages.BUILTIN, SlowStage.name, f"{__name__}:{SlowStage.__name__}")
    marker = tmp_path / "markers"
    marker.mkdir()
    return marker


def test_progress_actor_lost_mid_stage_costs_only_progress(
    cluster: Cluster, workers: list[Any], slow_stage: Path, s3_bucket: str
):
    """The actor that carries row ticks lives on the driver's node, so no worker node's loss
    takes it; should it die anyway, tasks and the stage go on without row counts."""
    config = {"marker_dir": str(slow_stage), "tasks": 6, "seconds": 0.4}
    out = f"{s3_bucket}/ticks"
    with make_executor("ray", address=cluster.address) as executor:
        ticks = executor._ticks  # type: ignore[attr-defined]
        driver = _Driver(lambda: run_stage(SlowStage.name, config, out, executor=executor))
        driver.start()
        _wait_for(lambda: _committed(out), driver, "a committed task")
        ray.kill(ticks, no_restart=True)
        assert driver.outcome().status == "ran"
    assert dataset.verify_dataset(out).rows == 60
    assert all(len(_markers(slow_stage, "start", i)) == 1 for i in range(6))  # none retried


def test_node_lost_without_retries_fails_in_one_sentence_and_resumes(
    cluster: Cluster, workers: list[Any], slow_stage: Path, s3_bucket: str, tmp_path: Path
):
    """With no retries left, a node killed in the middle of a task stops the stage with one
    sentence, no manifest. Results of tasks that had already finished on that node were
    fetched and committed when they finished (they are big enough to live only in that node's
    object store), so the rerun redoes only the unfinished tasks and matches a local run."""
    config = {"marker_dir": str(slow_stage), "tasks": 8, "result_bytes": 200_000}
    out = f"{s3_bucket}/slow"
    victim = workers[0]
    with make_executor("ray", address=cluster.address, max_retries=0) as executor:
        driver = _Driver(lambda: run_stage(SlowStage.name, config, out, executor=executor))
        driver.start()

        def committed_on_victim_and_busy() -> set[int]:
            """Tasks the victim finished whose results are committed, if it runs another."""
            done = {_index(p) for p in _markers(slow_stage, "done", node=victim.node_id)}
            started = {_index(p) for p in _markers(slow_stage, "start", node=victim.node_id)}
            return done & _committed(out) if started - done else set()

        _wait_for(committed_on_victim_and_busy, driver, "a commit from the victim, then a task")
        _kill(cluster, victim)
        with pytest.raises(DataprepError) as failure:
            driver.outcome()
    message = str(failure.value)
    assert re.search(LOST_IN_ONE_TRY, message)
    assert "rerunning the same command resumes" in message
    assert "\n" not in message
    assert not dataset.is_dataset(out)
    committed = _committed(out)
    assert committed and len(committed) < 8

    before = {i: len(_markers(slow_stage, "start", i)) for i in range(8)}
    with make_executor("ray", address=cluster.address) as executor:
        run = run_stage(SlowStage.name, config, out, executor=executor)
    assert run.status == "ran"
    rerun = {i for i in range(8) if len(_markers(slow_stage, "start", i)) > before[i]}
    assert rerun == set(range(8)) - committed  # incl. what finished on the lost node: kept
    _assert_same_as_local(out, config, tmp_path)


def test_all_worker_nodes_lost_is_one_sentence_not_a_hang(
    cluster: Cluster, workers: list[Any], slow_stage: Path, s3_bucket: str, tmp_path: Path
):
    """With every worker node gone, the lost tasks can never be scheduled: the stage says so
    after `node_wait_s` instead of waiting forever; with nodes back, a rerun resumes."""
    from dataprep.executors.ray import RayExecutor

    config = {"marker_dir": str(slow_stage), "tasks": 6, "seconds": 0.4}
    out = f"{s3_bucket}/starved"
    with RayExecutor(address=cluster.address, node_wait_s=2) as executor:
        driver = _Driver(lambda: run_stage(SlowStage.name, config, out, executor=executor))
        driver.start()
        _wait_for(lambda: _committed(out), driver, "a committed task")
        for node in workers:
            _kill(cluster, node)
        with pytest.raises(DataprepError, match=r"0 CPUs for 2 s.*rerunning") as failure:
            driver.outcome(timeout=60)
        assert "\n" not in str(failure.value)
        assert not dataset.is_dataset(out)

        cluster.add_node(**NODE)  # a node is back: the same driver resumes the stage
        assert run_stage(SlowStage.name, config, out, executor=executor).status == "ran"
    _assert_same_as_local(out, config, tmp_path)


def test_node_lost_mid_shard_and_mid_dedup_matches_local(
    cluster: Cluster, workers: list[Any], jsonl_dir: Path, s3_bucket: str, tmp_path: Path
):
    """One worker node dies mid-`shard` (a new node replaces it, as an autoscaler would), the
    other mid-`dedup`: both stages finish on S3 with the same shards, rows and checksums as a
    local run."""
    with make_executor("local", workers=1) as local:
        _shard_then_dedup(str(tmp_path / "local"), jsonl_dir, local)
    remote = f"{s3_bucket}/work"
    with make_executor("ray", address=cluster.address) as executor:
        driver = _Driver(lambda: _shard_then_dedup(remote, jsonl_dir, executor))
        driver.start()
        for stage_id, victim in zip(("shards", "exact"), workers, strict=True):
            out = f"{remote}/{stage_id}"
            _wait_for(lambda out=out: _records(out) >= 1, driver, f"a committed {stage_id} task")
            _kill(cluster, victim)
            assert not dataset.is_dataset(out), f"{stage_id} finished before its node was lost"
            if stage_id == "shards":
                cluster.add_node(**NODE)
        runs = driver.outcome()
    assert [run.status for run in runs] == ["ran", "ran"]
    for stage_id in ("shards", "exact"):
        _assert_same_dataset(f"{remote}/{stage_id}", tmp_path / "local" / stage_id)


def _sized_result(args: tuple[str, int]) -> tuple[int, str]:
    """A task whose result (over Ray's 100 KiB inline limit) lives in its node's object store."""
    marker_dir, index = args
    node = ray.get_runtime_context().get_node_id()
    time.sleep(0.3)
    (Path(marker_dir) / f"done-{index}-{node}-{uuid.uuid4().hex[:8]}").touch()
    return index, "x" * 300_000


def test_result_held_only_by_a_lost_node_is_recomputed(
    cluster: Cluster, workers: list[Any], tmp_path: Path
):
    """While the driver commits one result (slow on_done), another task finishes on the victim
    node, whose object store then holds the only copy of its result; the victim dies before the
    driver fetches it. Ray recomputes just that result from lineage (a retry) and the run ends
    with every result, once each; results already fetched are not recomputed."""
    victim, marks = workers[0], tmp_path
    fetched: list[int] = []
    lost: set[int] = set()

    def on_done(j: int, result: Any) -> None:
        if not fetched:  # the first commit: wait for a finished, unfetched result on the victim
            _wait_until(lambda: _finished_on(marks, victim) - {j}, "a result on the victim")
            time.sleep(0.5)  # its result is stored, not fetched: the driver is still here
            lost.update(_finished_on(marks, victim) - {j})
            _kill(cluster, victim)
        fetched.append(j)

    tasks = [(str(marks), i) for i in range(6)]
    with make_executor("ray", address=cluster.address, max_retries=1) as executor:
        results = executor.run(_sized_result, tasks, on_done)
    assert [index for index, _ in results] == list(range(6)) and sorted(fetched) == list(range(6))
    assert all(len(payload) == 300_000 for _, payload in results)
    runs = {i: len(_markers(marks, "done", i)) for i in range(6)}
    assert runs == {i: 2 if i in lost else 1 for i in range(6)}  # only lost results, again


RECIPE = """
version: 1
name: node-loss
vars: {{root: {root}}}
input: {{path: {source}}}
executor: {{kind: ray, address: "{address}", max_retries: 0}}
stages:
  - {{id: shards, op: shard, params: {{shard_rows: 200, chunk_bytes: 65536}}}}
"""


def test_cli_run_on_a_cluster_losing_a_node(
    cluster: Cluster, workers: list[Any], jsonl_dir: Path, s3_bucket: str, tmp_path: Path
):
    """`dataprep run` as its own driver process, no retries, a node killed mid-stage: it either
    finishes (the node was idle) or exits 2 with one line; then the same command resumes, and
    the shards on S3 are those of a local run."""
    root = f"{s3_bucket}/cli"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(root=root, source=jsonl_dir, address=cluster.address))
    command = [sys.executable, "-m", "dataprep", "run", str(recipe), "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until(lambda: _records(f"{root}/shards") >= 1 or proc.poll() is not None, "a task")
        assert proc.poll() is None, proc.communicate()
        _kill(cluster, workers[0])
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    if proc.returncode != 0:
        assert proc.returncode == 2, stderr
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert re.search(LOST_IN_ONE_TRY, stderr)
        assert not dataset.is_dataset(f"{root}/shards")
        cli("run", recipe, "-q")  # the same command resumes
    with make_executor("local", workers=1) as local:
        run_stage("shard", SHARD, tmp_path / "local", inputs=[str(jsonl_dir)], executor=local)
    _assert_same_dataset(f"{root}/shards", tmp_path / "local")
