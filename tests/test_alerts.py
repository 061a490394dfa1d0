"""Issue 17: alert rules on training metrics, and the training metrics on Prometheus.

Unit tests judge each rule on short hand-computed sequences (the expected thresholds are
written out as arithmetic, not computed with the rule's code). End-to-end tests are real
`dataprep train` runs (2 gloo processes on CPU, the tiny model) with a real fault: a
learning rate that blows the loss up (NaN, or a finite spike), and a storage layer made slow
by a sitecustomize in the test's PYTHONPATH (every row-group read waits), then alerts.jsonl
and the exit code are checked against metrics.jsonl.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import cli, cli_all, token_blocks

from dataprep.errors import DataprepError
from dataprep.train.alerts import Alerts, parse, resolve

SEQ = 32
BASE = ("--model", "tiny", "--seq-len", str(SEQ), "--num-workers", "0", "--device", "cpu")
TWO = ("--batch-size", "4", "--nproc-per-node", "2")


def _steps(alerts: Alerts, key: str, values: list[float]) -> list[tuple[int, float, float | None]]:
    """Feed `values` as steps 1.. (other fields filled in); the (step, value, threshold) of
    each alert that fires."""
    fired = []
    for step, value in enumerate(values, 1):
        record = {"step": step, "loss": 1.0, "tokens_per_s": 100.0, "data_stall_frac": 0.0}
        record |= {"step_time_s": 0.1, key: value}
        fired += [(a.step, a.value, a.threshold) for a in alerts.observe(record)]
    return fired


# --- the rules, by hand -------------------------------------------------------------------


def test_nonfinite_fires_once_per_episode() -> None:
    fired = _steps(Alerts(["nonfinite"]), "loss", [1.0, math.nan, math.nan, 2.0, math.inf, 3.0])
    assert [step for step, _, _ in fired] == [2, 5]
    assert math.isnan(fired[0][1]) and fired[1][1] == math.inf


def test_loss_spike_against_mean_plus_k_std_of_the_window() -> None:
    alerts = Alerts(["loss_spike:k=2,window=5,min=5"])
    losses = [1.0, 1.1, 0.9, 1.0, 1.0, 5.0, 5.1, 1.0, 1.05, 6.0]
    fired = _steps(alerts, "loss", losses)
    # step 6: window 1, 1.1, .9, 1, 1: mean 1, population variance (0 + .01 + .01 + 0 + 0) / 5
    first = 1.0 + 2 * math.sqrt(0.02 / 5)
    # step 7 is the same episode (the spike joined no window); step 8 clears it; steps 8 and 9
    # join: window 1.1, .9, 1, 1 -> .9, 1, 1, 1, 1.05 ... at step 10: .9, 1, 1, 1, 1.05
    mean = (0.9 + 1 + 1 + 1 + 1.05) / 5
    var = sum((x - mean) ** 2 for x in (0.9, 1, 1, 1, 1.05)) / 5
    assert [(s, v) for s, v, _ in fired] == [(6, 5.0), (10, 6.0)]
    assert fired[0][2] == pytest.approx(first) and fired[1][2] == pytest.approx(
        mean + 2 * math.sqrt(var)
    )
    # not judged before `min` losses are known, and never on a NaN
    early = Alerts(["loss_spike:k=2,window=5,min=3"])
    assert _steps(early, "loss", [1.0, 1.0, 50.0, math.nan, 1.0]) == []


def test_stall_skips_the_start_and_fires_per_episode() -> None:
    fired = _steps(
        Alerts(["stall:pct=30,skip=2,window=1"]),
        "data_stall_frac",
        [0.9, 0.9, 0.1, 0.5, 0.6, 0.2, 0.31],
    )
    assert fired == [(4, 50.0, 30.0), (7, 31.0, 30.0)]


def test_one_slow_read_on_a_healthy_run_is_no_stall() -> None:
    """The default judges the stall's share of the last 10 steps' time: a single 31% step (a
    10 ms hiccup, as a plain 20-step CPU run had) does not fire; a sustained stall does."""
    healthy = [0.0] * 5 + [0.02, 0.01, 0.31, 0.03, 0.0, 0.02, 0.05, 0.01, 0.0, 0.02, 0.01, 0.4]
    assert _steps(Alerts(["stall"]), "data_stall_frac", healthy) == []
    stalled = [0.0] * 5 + [0.5] * 12
    fired = _steps(Alerts(["stall"]), "data_stall_frac", stalled)
    assert [(step, round(value, 9), threshold) for step, value, threshold in fired] == [
        (15, 50.0, 30.0)  # skip 5, then the first full window of 10 steps
    ]


def test_throughput_against_the_runs_median() -> None:
    alerts = Alerts(["throughput:pct=50,window=1,skip=0,min=3"])
    fired = _steps(alerts, "tokens_per_s", [100, 100, 100, 40, 45, 100, 49, 48])
    # step 4: median(100, 100, 100) = 100 -> 40 < 50; 5 stays; 6 clears; 7: median of
    # 100, 100, 100, 40, 45, 100 = 100 -> 49 < 50 fires again; 8 stays
    assert fired == [(4, 40.0, 50.0), (7, 49.0, 50.0)]
    # window=3: the median of the last three steps; one slow step is no drop
    smooth = Alerts(["throughput:pct=50,window=3,skip=1,min=3"])
    fired = _steps(smooth, "tokens_per_s", [1, 100, 100, 100, 10, 100, 100, 10, 10, 10, 100, 100])
    # skip=1 drops step 1; steps 5 and 8 are single slow steps (window medians 100); step 9:
    # last three 100, 10, 10 -> 10 against the median 100 of steps 2-8; step 10 stays (10, 10,
    # 10), step 11 still 10 (10, 10, 100), step 12 clears
    assert fired == [(9, 10.0, 50.0)]


def test_rule_specs_and_defaults() -> None:
    assert resolve([]) == [
        "nonfinite",
        "loss_spike:k=4,window=50,min=10",
        "stall:pct=30,window=10,skip=5",
        "throughput:pct=50,window=5,skip=5,min=10",
    ]
    assert resolve(["stall:pct=50"])[2] == "stall:pct=50,window=10,skip=5"  # the default's place
    assert resolve(["stall:pct=50"], defaults=False) == ["stall:pct=50,window=10,skip=5"]
    for bad, says in [
        ("spike", "unknown rule 'spike'"),
        ("stall:pct", "'pct' is not KEY=VALUE"),
        ("stall:level=3", "'level=3' is not KEY=VALUE with pct=, window=, skip="),
        ("loss_spike:window=x", "window must be an integer"),
        ("loss_spike:k=-1", "k must be positive"),
        ("stall:pct=130", "pct must be in (0, 100]"),
        ("loss_spike:window=5,min=9", "min must be from 2 to window (5)"),
    ]:
        with pytest.raises(DataprepError, match=re.escape(says)):
            parse(bad)


def test_bad_alert_is_one_sentence(tmp_path: Path) -> None:
    proc = cli("train", str(tmp_path), "--out", str(tmp_path / "r"), "--alert", "stall:x=1",
               check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "--alert 'stall:x=1'" in proc.stderr


# --- real runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_blocks(tmp_path_factory.mktemp("blocks"), SEQ)


def _run(data: Path, out: Path, *more: str, env: dict | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "dataprep", "train", str(data), "--out", str(out), *BASE]
    return subprocess.run([*args, *more], capture_output=True, text=True, timeout=300, env=env)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _checkpoints(out: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*"))


NAN = ("--lr", "1e30", "--warmup-steps", "0", "--checkpoint-every", "1", "--steps", "8")
SPIKE = ("--lr", "0.05", "--warmup-steps", "30", "--steps", "30", "--checkpoint-every", "1000")
SPIKE += ("--no-default-alerts", "--alert", "loss_spike:k=3,window=10,min=5")


@pytest.fixture(scope="module")
def first_runs(
    blocks: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The independent first runs of the NaN, loss-spike and port-in-use tests below, started
    together (they overlap on 2 cores); each test checks its own. "port" is run while another
    socket holds the port, which is kept as `port.txt` beside it."""
    import socket

    root = tmp_path_factory.mktemp("first_runs")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (root / "port.txt").write_text(str(port))
        more = {
            "nan": (*TWO, *NAN, "--on-alert", "stop", "--quiet"),
            "spike": (*TWO, *SPIKE, "--on-alert", "stop", "--json"),
            "port": ("--batch-size", "4", "--nproc-per-node", "1", "--steps", "2"),
        }
        more["port"] += ("--metrics-port", str(port))
        runs = (("train", str(blocks), "--out", str(root / k), *BASE, *v) for k, v in more.items())
        procs = cli_all(*runs, check=False)
    return {name: (proc, root / name) for name, proc in zip(more, procs, strict=True)}


@pytest.mark.slow
def test_nan_loss_stops_without_saving_nan_weights_and_resumes(blocks: Path, first_runs: dict):
    """lr 1e30: step 2's loss is NaN. --on-alert stop: every rank leaves after step 3, exit 3,
    one alert record; the NaN weights of steps 2 and 3 are not checkpointed, and a rerun with a
    sane lr resumes from step 1."""
    proc, out = first_runs["nan"]  # `NAN` on 2 processes, --on-alert stop
    assert proc.returncode == 3, proc.stderr[-3000:]
    records = _jsonl(out / "metrics.jsonl")
    bad = [r["step"] for r in records if not math.isfinite(r["loss"])]
    [alert] = _jsonl(out / "alerts.jsonl")
    assert alert["rule"] == "nonfinite" and alert["step"] == bad[0] == 2
    assert math.isnan(alert["value"]) and alert["threshold"] is None and alert["time"]
    assert f"alert nonfinite at step 2: {alert['message']}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [r["step"] for r in records] == [1, 2, 3]  # the stop reached both ranks at step 3
    assert _checkpoints(out) == [1]
    assert "stopped by alert nonfinite at step 3, not saved" in proc.stderr
    # rerun with warn: it resumes from the last good checkpoint (the checkpoint's optimizer
    # state keeps its lr, so the loss goes NaN again at step 2, is told once, and runs on)
    again = _run(blocks, out, *TWO, *NAN)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "from step 1 (resumed" in again.stdout, again.stdout
    assert [r["step"] for r in _jsonl(out / "metrics.jsonl")] == list(range(1, 9))
    assert [(a["step"], a["rule"]) for a in _jsonl(out / "alerts.jsonl")] == [(2, "nonfinite")]
    assert _checkpoints(out)[-1] == 8


@pytest.mark.slow
def test_loss_spike_stops_with_a_checkpoint(first_runs: dict) -> None:
    """A real instability: lr ramping up to 0.05 spikes the tiny model's loss. The alert is the
    first step whose loss exceeds mean + 3 std of the 10 before it (recomputed here from
    metrics.jsonl); the run stops after the next step with a checkpoint there, exit 3."""
    proc, out = first_runs["spike"]  # `SPIKE` on 2 processes, --on-alert stop
    assert proc.returncode == 3, proc.stderr[-3000:]
    losses = [r["loss"] for r in _jsonl(out / "metrics.jsonl")]
    window: list[float] = []
    first = None
    for step, loss in enumerate(losses, 1):
        if len(window) >= 5:
            mean = sum(window) / len(window)
            std = math.sqrt(sum((x - mean) ** 2 for x in window) / len(window))
            if loss > mean + 3 * std:
                first = (step, loss, mean + 3 * std)
                break
        window = (window + [loss])[-10:]
    assert first is not None, losses
    [alert] = _jsonl(out / "alerts.jsonl")
    assert (alert["step"], alert["value"]) == first[:2]
    assert alert["threshold"] == pytest.approx(first[2])
    summary = json.loads(proc.stdout)
    assert summary["step"] == first[0] + 1 == len(losses) and summary["alert"] == "loss_spike"
    assert _checkpoints(out) == [first[0] + 1]
    line = f"stopped by alert loss_spike at step {first[0] + 1}; checkpoint saved"
    assert proc.stderr.strip().splitlines()[-1].startswith(line), proc.stderr[-2000:]


_SLOW_STORAGE = """
import os, time
import pyarrow.parquet as pq

_read = pq.ParquetFile.iter_batches


def _slow(self, *args, **kwargs):  # a store with 0.3 s latency per row-group read
    time.sleep(0.3)
    return _read(self, *args, **kwargs)


pq.ParquetFile.iter_batches = _slow
"""


@pytest.mark.slow
def test_data_stall_stops_and_resumes(blocks: Path, tmp_path: Path) -> None:
    """Slow storage: the reader waits on reads as an epoch starts. The alert is the first step
    after skip=2 whose data_stall_frac in metrics.jsonl is over 40%; --on-alert stop leaves
    after the next step with a checkpoint (exit 3); rerun on fast storage, it resumes."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SLOW_STORAGE)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(hook), *sys.path])}
    out = tmp_path / "run"
    rule = ("--no-default-alerts", "--alert", "stall:pct=40,skip=2,window=1")
    proc = _run(blocks, out, *TWO, "--steps", "45", *rule, "--on-alert", "stop", env=env)
    assert proc.returncode == 3, proc.stderr[-3000:]
    records = _jsonl(out / "metrics.jsonl")
    stalled = [(r["step"], 100 * r["data_stall_frac"]) for r in records[2:]]
    first = next((step, pct) for step, pct in stalled if pct > 40)
    [alert] = _jsonl(out / "alerts.jsonl")
    assert (alert["step"], alert["value"]) == first and alert["threshold"] == 40
    assert alert["rule"] == "stall" and f"alert stall at step {first[0]}:" in proc.stderr
    assert [r["step"] for r in records] == list(range(1, first[0] + 2))
    assert _checkpoints(out) == [first[0] + 1]
    again = _run(blocks, out, *TWO, "--steps", str(first[0] + 4), *rule)  # fast storage
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"from step {first[0] + 1} (resumed" in again.stdout
    assert [r["step"] for r in _jsonl(out / "metrics.jsonl")] == list(range(1, first[0] + 5))


# --- Prometheus -----------------------------------------------------------------------------


def _scrape(url: str) -> dict[str, dict]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def test_collector_exposes_the_last_step_and_sums() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from dataprep.train.prom import TrainCollector

    registry = CollectorRegistry()
    collector = TrainCollector(tokens_per_step=256, rules=["nonfinite", "stall"])
    registry.register(collector)
    assert generate_latest(registry).decode().count("dataprep_train_loss") == 0  # no step yet
    for step, (loss, stall) in enumerate([(5.0, 0.25), (4.5, 0.5)], 1):
        record = {"step": step, "loss": loss, "lr": 1e-3, "tokens_per_s": 1000.0 * step}
        record |= {"step_time_s": 0.5, "data_wait_s": stall, "data_stall_s": stall}
        record |= {"data_wait_frac": stall / 0.5, "data_stall_frac": stall / 0.5}
        collector.update(record)
    collector.alerts(["stall"], {"nonfinite": False, "stall": True})
    collector.evaluated(4.25)
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(s.labels.values())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("dataprep_train_step", ())] == 2
    assert samples[("dataprep_train_loss", ())] == 4.5
    assert samples[("dataprep_train_tokens_per_second", ())] == 2000
    assert samples[("dataprep_train_data_stall_ratio", ())] == 1.0
    assert samples[("dataprep_train_data_stall_seconds_total", ())] == 0.75
    assert samples[("dataprep_train_step_seconds_total", ())] == 1.0
    assert samples[("dataprep_train_tokens_total", ())] == 512
    assert samples[("dataprep_train_eval_loss", ())] == 4.25
    assert samples[("dataprep_train_alerts_total", ("stall",))] == 1
    assert samples[("dataprep_train_alerts_total", ("nonfinite",))] == 0
    assert samples[("dataprep_train_alert_active", ("stall",))] == 1
    assert not any("mfu" in name or "gpu" in name for name, _ in samples)  # CPU: not exported


def test_gpu_energy_per_step_from_the_nvml_counter(tmp_path: Path) -> None:
    """NVML's total-energy counter (millijoules since the driver loaded) becomes joules per
    step in the record. No GPU here: a stand-in for the pynvml module with a counter."""
    from dataprep.train.config import TrainConfig
    from dataprep.train.metrics import Energy
    from dataprep.train.runlog import Console
    from dataprep.train.watch import Watch

    class Nvml:
        readings = iter([1_000_000, 1_250_500, 1_251_000])  # mJ

        def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:  # noqa: N802
            return next(self.readings)

    if importlib.util.find_spec("pynvml") is None:
        assert Energy.open(0) is None  # no pynvml: energy is simply absent, no error
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path), alerts=("nonfinite",))
    watch = Watch(cfg, 0, Console(0, True, 0), None, 64, None)
    watch.energy = Energy(Nvml(), handle=None)
    joules = []
    for step in (1, 2):
        record = {"step": step, "loss": 1.0}
        watch.observe(record)
        joules.append(record["gpu_energy_j"])
    assert joules == [250.5, 0.5]


@pytest.mark.slow
def test_metrics_port_serves_what_metrics_jsonl_records(blocks: Path, tmp_path: Path) -> None:
    """Scrapes during a real run match metrics.jsonl for the step they show; with
    DATAPREP_METRICS_LINGER rank 0 keeps serving after the last step until a scrape saw it."""
    out = tmp_path / "run"
    steps = 60
    args = [sys.executable, "-m", "dataprep", "train", str(blocks), "--out", str(out), *BASE]
    args += [*TWO, "--steps", str(steps), "--checkpoint-every", "1000", "--metrics-port", "0"]
    env = os.environ | {"DATAPREP_METRICS_LINGER": "120"}
    proc = subprocess.Popen([*args, "--quiet"], stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    scrapes = []
    try:
        deadline = time.time() + 240
        while not any("metrics: http" in line for line in lines):
            assert proc.poll() is None and time.time() < deadline, "".join(lines)
            time.sleep(0.05)
        url = next(line.split()[1] for line in lines if "metrics: http" in line)
        while proc.poll() is None and time.time() < deadline:
            try:  # scrape until the run ends: it lingers until a scrape saw its final values
                families = _scrape(url)
            except OSError:  # the run ended between poll() and the scrape
                break
            if "dataprep_train_step" in families:
                scrapes.append(families)
            time.sleep(0.1)
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0, "".join(lines)[-3000:]
    shown = [int(f["dataprep_train_step"][("dataprep_train_step", ())]) for f in scrapes]
    assert len(set(shown)) >= 2 and shown[-1] == steps, shown  # during the run, and the last
    records = {r["step"]: r for r in _jsonl(out / "metrics.jsonl")}
    for families, step in zip(scrapes, shown, strict=True):
        value = {name: next(iter(samples.values())) for name, samples in families.items()}
        record = records[step]  # one scrape: one step's snapshot
        assert value["dataprep_train_loss"] == pytest.approx(record["loss"], rel=1e-9)
        assert value["dataprep_train_tokens_per_second"] == pytest.approx(
            record["tokens_per_s"], rel=1e-9
        )
        assert value["dataprep_train_data_stall_ratio"] == pytest.approx(
            record["data_stall_frac"], rel=1e-9
        )
        assert value["dataprep_train_tokens"] == step * 4 * 2 * SEQ  # batch x ranks x seq
        stalled = sum(records[s]["data_stall_s"] for s in range(1, step + 1))
        assert value["dataprep_train_data_stall_seconds"] == pytest.approx(stalled, rel=1e-6)
        alerts = families["dataprep_train_alerts"]
        assert ("dataprep_train_alerts_total", (("rule", "nonfinite"),)) in alerts
        # on CPU without NVML: no MFU, GPU memory or energy series at all
        assert not {"dataprep_train_mfu_ratio", "dataprep_train_gpu_energy_joules"} & set(value)


@pytest.mark.slow
def test_metrics_port_in_use_is_one_sentence(first_runs: dict) -> None:
    proc, out = first_runs["port"]  # run while another socket listened on the port
    port = int((out.parent / "port.txt").read_text())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"--metrics-port {port}: the port is already in use" in proc.stderr.strip()
