"""Live Prometheus metrics (`--metrics-port`): scraped over HTTP while real stages run.

The oracle is the stage's own report (`--json`, `.report.json`) and manifests: what the
endpoint says at the end must equal what the stage says it did, and every counter a scraper
sees during the run only grows. Worker processes' and Ray tasks' counts reach the driver's
endpoint through progress ticks and task results.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from flaky_stage import FlakyStage
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dataprep import dataset, stages
from dataprep.executors import make_executor
from dataprep.observe import metrics, stage_metrics
from dataprep.observe.metrics import LINGER_ENV
from dataprep.runner import run_stage
from dataprep.sample import generate_corpus

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "examples" / "monitoring"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Exposition text -> {(sample name, labels): value} and {family name: type}."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None  # not up yet, or the process is gone


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of 60 shards (6,000 documents): a pool stage on it runs 60 tasks, so even an
    idle machine takes a while (each task opens, reads and writes a shard)."""
    root = tmp_path_factory.mktemp("metrics")
    generate_corpus(root / "raw", docs=6000, seed=3, malformed=0)
    out = root / "shards"
    run_stage("shard", {"shard_rows": 100}, out, inputs=[str(root / "raw")])
    return out


@pytest.fixture
def collector() -> Iterator[None]:
    """Stage metrics on in this process (as --metrics-port turns them on), scraped in-process."""
    stage_metrics.enable()
    yield


def metrics_url(proc: subprocess.Popen, deadline_s: float = 120) -> str:
    """The URL the command announces on stderr (`metrics: http://127.0.0.1:PORT/metrics`)."""
    deadline = time.monotonic() + deadline_s
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        found = re.search(r"metrics: (http://\S+/metrics)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no metrics URL announced (exit {proc.poll()})")


def scrape_until_done(
    url: str, proc: subprocess.Popen, runs: int = 1
) -> tuple[list[Samples], dict[str, str]]:
    """Scrape every 20 ms until the command exits: it keeps serving after its work
    (DATAPREP_METRICS_LINGER) until a scrape has seen the final values, so the last scrape
    shows `runs` finished stage runs. Returns every scrape and the metric types."""
    seen: list[Samples] = []
    types: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        text = scrape(url)
        if text is not None:
            samples, types = parse(text)
            seen.append(samples)
        time.sleep(0.02)
    assert seen and total(seen[-1], "dataprep_stage_runs_total") == runs, proc.poll()
    return seen, types


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "DATAPREP_METRICS_LINGER": "60"}
    cmd = [sys.executable, "-m", "dataprep", *args, "--metrics-port", "0"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def assert_monotone(scrapes: list[Samples], types: dict[str, str]) -> None:
    counters = {f"{name}_total" for name, kind in types.items() if kind == "counter"}
    for before, after in zip(scrapes, scrapes[1:], strict=False):
        for key, value in before.items():
            if key[0] in counters:
                assert after.get(key, 0) >= value, f"{key} went down: {value} -> {after.get(key)}"


def test_a_pool_stage_is_scraped_live_and_ends_at_its_report(shards: Path, tmp_path: Path):
    """`score -w 2`: rows are counted in the two worker processes only, so every row the
    endpoint shows came over the pool's tick queue; the last scrape equals the report."""
    proc = start("score", str(shards), "-o", str(tmp_path / "scored"), "-w", "2", "--json")
    url = metrics_url(proc)
    scrapes, types = scrape_until_done(url, proc)
    out, err = proc.communicate(timeout=60)  # it stops serving once the final values went out
    assert proc.returncode == 0, err
    report = json.loads(out)[0]["report"]
    assert_monotone(scrapes, types)

    final = scrapes[-1]
    labels = {"stage": "score", "op": "score"}
    tasks = len(dataset.read_manifest(shards).shards)  # score: one task per input shard
    assert total(final, "dataprep_stage_rows_total", **labels) == report["rows_in"] == 6000
    assert total(final, "dataprep_stage_tasks_done_total", **labels) == report["shards"] == tasks
    assert total(final, "dataprep_stage_tasks_planned", **labels) == tasks
    assert total(final, "dataprep_stage_written_bytes_total", **labels) == report["bytes_out"]
    assert total(final, "dataprep_stage_read_bytes_total", **labels) == sum(
        s.bytes for s in dataset.read_manifest(shards).shards
    )
    assert total(final, "dataprep_stage_task_failures_total", **labels) == 0
    assert total(final, "dataprep_stage_running", **labels) == 0
    assert total(final, "dataprep_stage_runs_total", status="ran", **labels) == 1
    assert 0 < total(final, "dataprep_stage_duration_seconds", **labels) <= report["seconds"] + 1

    live = [
        s
        for s in scrapes
        if total(s, "dataprep_stage_running", **labels) == 1
        and 0 < total(s, "dataprep_stage_rows_total", **labels) < 6000
    ]
    assert live, "no scrape saw the stage part-way"
    assert any(total(s, "dataprep_stage_rows_per_second", **labels) > 0 for s in live)


def test_a_recipe_run_labels_each_stage_and_counts_quarantined_rows(tmp_path: Path):
    """`dataprep run`: one series per stage id; the shard stage's 7 malformed lines are
    quarantined rows as they happen, equal to its report."""
    generate_corpus(tmp_path / "raw", docs=800, seed=1, malformed=7)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "metrics",
                "vars": {"root": str(tmp_path / "work")},
                "input": {"path": str(tmp_path / "raw"), "text_column": "text"},
                "executor": {"kind": "local", "workers": 1},
                "stages": [
                    {"id": "shards", "op": "shard", "params": {"shard_rows": 100}},
                    {"id": "scored", "op": "score"},
                ],
            }
        )
    )
    proc = start("run", str(recipe), "--json")
    url = metrics_url(proc)
    scrapes, _ = scrape_until_done(url, proc, runs=2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reports = {r["id"]: r["report"] for r in json.loads(out)}
    final = scrapes[-1]
    for stage_id, op in (("shards", "shard"), ("scored", "score")):
        rows = total(final, "dataprep_stage_rows_total", stage=stage_id, op=op)
        assert rows == reports[stage_id]["rows_out"] == 800
        written = total(final, "dataprep_stage_written_bytes_total", stage=stage_id)
        assert written == reports[stage_id]["bytes_out"]
    quarantined = total(final, "dataprep_stage_quarantined_rows_total", stage="shards")
    assert quarantined == reports["shards"]["quarantined"] == 7
    assert total(final, "dataprep_stage_read_bytes_total", stage="shards") == sum(
        p.stat().st_size for p in (tmp_path / "raw").glob("*.jsonl.zst")
    )  # every input file once (corpus.json, the corpus' description, is not an input)


EXITING_SERVER = """
import time
from prometheus_client import Counter
from dataprep.observe import metrics
runs = Counter("dataprep_stage_runs", "runs", registry=metrics.registry())
metrics.announce(metrics.serve(0))
time.sleep(0.2)
runs.inc(2)
metrics.changed()
"""


def scrape_through_exit(env: dict[str, str]) -> list[str]:
    """Scrape a process back to back while it finishes and exits: every answer it gave."""
    proc = subprocess.Popen(
        [sys.executable, "-c", EXITING_SERVER], stderr=subprocess.PIPE, text=True, env=env
    )
    url = metrics_url(proc)
    answers: list[str] = []
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answers.append(response.read().decode())
        except (urllib.error.URLError, ConnectionError):
            pass  # refused or cut before an answer began: a scraper records the target down
        except Exception as exc:  # an answer that began and broke off
            answers.append(repr(exc))
    proc.wait(timeout=30)
    return answers


def test_a_scrape_while_the_process_exits_is_complete_or_refused():
    """A scrape that reaches a finishing process gets the whole page or no answer at all:
    never an empty or cut-off 200, which a Prometheus server would store as every series
    gone. Before the fix, 6 of 40 processes answered their last scrape with an empty page."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    for linger in ("30", "0"):  # waiting for a final scrape, and not waiting at all
        env[LINGER_ENV] = linger
        with ThreadPoolExecutor(4) as pool:
            rounds = list(pool.map(lambda _: scrape_through_exit(env), range(16)))
        for answers in rounds:
            for text in answers:
                assert "dataprep_stage_runs_total" in text, repr(text[:200])
        if linger != "0":
            finals = [parse(answers[-1])[0] for answers in rounds]
            assert all(total(final, "dataprep_stage_runs_total") == 2 for final in finals)


def test_a_port_in_use_is_one_sentence_and_exit_2(shards: Path, tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = [sys.executable, "-m", "dataprep", "score", str(shards), "-o", str(tmp_path / "o")]
        proc = subprocess.run(
            [*cmd, "--metrics-port", str(port)], capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"--metrics-port {port}: the port is already in use" in message
    assert not (tmp_path / "o").exists()  # refused before the stage touched anything


def test_a_bad_port_is_one_sentence():
    with pytest.raises(Exception, match="a port is a number from 0 to 65535"):
        metrics.serve(70000)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stages.BUILTIN, "flaky", f"flaky_stage:{FlakyStage.__name__}")


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_and_retried_attempts_are_counted(tmp_path, flaky, collector, workers):
    """A task that raises once: one failure, one retry, no task failed for good, all done."""
    stage_id = f"flaky-raise-{workers}"
    config = {"mode": "raise_once", "marker_dir": str(tmp_path), "tasks": 4, "fail_index": 1}
    with make_executor("local", workers=workers) as executor:
        run = run_stage("flaky", config, tmp_path / "out", executor=executor, stage_id=stage_id)
    samples, _ = parse(metrics.scrape())
    labels = {"stage": stage_id, "op": "flaky"}
    assert total(samples, "dataprep_stage_task_failures_total", **labels) == 1
    assert total(samples, "dataprep_stage_task_retries_total", **labels) == 1
    assert total(samples, "dataprep_stage_tasks_failed_total", **labels) == 0
    assert total(samples, "dataprep_stage_tasks_done_total", **labels) == 4
    assert total(samples, "dataprep_stage_written_bytes_total", **labels) == sum(
        s.bytes for s in dataset.read_manifest(run.out).shards
    )


def test_a_dead_worker_counts_every_task_it_took_down(tmp_path, flaky, collector):
    stage_id = "flaky-kill"
    config = {"mode": "kill_once", "marker_dir": str(tmp_path), "tasks": 4, "fail_index": 1}
    with make_executor("local", workers=2) as executor:
        run_stage("flaky", config, tmp_path / "out", executor=executor, stage_id=stage_id)
    samples, _ = parse(metrics.scrape())
    failures = total(samples, "dataprep_stage_task_failures_total", stage=stage_id)
    assert failures >= 1  # the pool cannot say which task died: all in flight count
    assert total(samples, "dataprep_stage_task_retries_total", stage=stage_id) == failures
    assert total(samples, "dataprep_stage_tasks_done_total", stage=stage_id) == 4


def test_a_stage_that_fails_is_a_failed_run(tmp_path, flaky, collector):
    stage_id = "flaky-user-error"
    config = {"mode": "user_error", "marker_dir": str(tmp_path), "tasks": 3, "fail_index": 0}
    with pytest.raises(Exception, match="a user error"):
        with make_executor("local", workers=2) as executor:
            run_stage("flaky", config, tmp_path / "out", executor=executor, stage_id=stage_id)
    samples, _ = parse(metrics.scrape())
    labels = {"stage": stage_id, "op": "flaky"}
    assert total(samples, "dataprep_stage_tasks_failed_total", **labels) == 1
    assert total(samples, "dataprep_stage_task_retries_total", **labels) == 0
    assert total(samples, "dataprep_stage_runs_total", status="failed", **labels) == 1
    assert total(samples, "dataprep_stage_running", **labels) == 0


# ---- examples/monitoring: the alert rules and the dashboard use names the code exports ----

METRIC_NAME = re.compile(r"\b(dataprep_[a-z0-9_]+)")


def exported_names() -> set[str]:
    """Every sample name the endpoint can serve (the oracle is a scrape, not a list)."""
    stage_metrics.enable()
    _, types = parse(metrics.scrape())
    names = set()
    for name, kind in types.items():
        names.add(f"{name}_total" if kind == "counter" else name)
        if kind in ("histogram", "summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names | train_names()


def train_names() -> set[str]:
    """The training metrics, as `dataprep train --metrics-port` serves them after a step:
    its collector, fed one step's record with every key it exports, scraped as text."""
    prom = pytest.importorskip("dataprep.train.prom")
    collector = prom.TrainCollector(tokens_per_step=64, rules=[])
    collector.update(dict.fromkeys([*prom.GAUGES, *prom.COUNTERS], 1.0))
    collector.evaluated(2.0)
    registry = CollectorRegistry()
    registry.register(collector)
    _, types = parse(generate_latest(registry).decode())
    return {f"{n}_total" if k == "counter" else n for n, k in types.items()}


def test_alert_rules_parse_and_use_exported_metrics():
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    assert isinstance(rules["groups"], list) and rules["groups"]
    used: set[str] = set()
    alerts = []
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert rule["alert"] and rule["expr"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]
            alerts.append(rule["alert"])
            used |= set(METRIC_NAME.findall(rule["expr"]))
    assert len(alerts) == len(set(alerts))
    exported = exported_names()
    missing = used - exported
    assert not missing, f"alert rules use metrics nobody exports: {sorted(missing)}"
    assert any(name.startswith("dataprep_stage_") for name in used)


def test_grafana_dashboard_is_valid_and_uses_exported_metrics():
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert board["title"] and board["schemaVersion"] >= 16 and board["panels"]
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    missing = used - exported_names()
    assert not missing, f"the dashboard uses metrics nobody exports: {sorted(missing)}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_and_unit_tests_the_rules():
    """Prometheus' own checker on the rules, and its rule unit tests (alerts firing on
    synthetic series) in examples/monitoring/alerts_test.yml."""
    check = subprocess.run(
        ["promtool", "check", "rules", str(MONITORING / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
