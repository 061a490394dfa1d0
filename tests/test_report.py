"""`dataprep report`: one offline HTML page about datasets and training runs.

The figures are checked against independent counts of the same data (plain pyarrow reads and
Python arithmetic, not the report's numpy code), lineage rows against each stage's manifest,
and the page itself in a real headless Chromium (Debian's package): no console errors, no
network request, every plot drawn with a non-zero size.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import shutil
from pathlib import Path

import pytest

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.report import build_report
from dataprep.report.build import CATEGORICAL
from dataprep.report.chain import chain
from dataprep.report.collect import collect_dataset
from dataprep.report.sections import dataset_sections
from dataprep.runner import run_stage
from dataprep.shardio import WriteOptions
from dataprep.stages.dedup.lsh import s_curve as dedup_s_curve
from tests.helpers import cli, column, encrypted_copy

WORDS = "the of data model train token shard near copy café naïve 東京 réseau über".split()


def _rows(n: int, seed: int = 0) -> list[dict]:
    """Documents with skewed sources, a rare label, non-ASCII text (characters != bytes),
    numeric columns, and copies (exact and near) for dedup to find."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        length = rng.choice([5, 20, 60, 200])
        words = [rng.choice(WORDS) for _ in range(length)]
        rows.append(
            {
                "id": f"doc{i}",
                "text": " ".join(words),
                "source": rng.choices(["web", "books", "code"], [6, 3, 1])[0],
                "label": "rare" if i % 25 == 0 else "common",
                "quality": round(rng.random(), 4),
                "n": rng.randint(0, 9),
                "short": length <= 20,
            }
        )
    for i in range(0, n // 5, 3):  # near copies: one word changed in a long document
        base = dict(rows[i], id=f"near{i}")
        words = base["text"].split()
        words[len(words) // 2] = "changed"
        base["text"] = " ".join(words)
        rows.append(base)
    return rows


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """raw JSONL -> shards -> near (minhash dedup) -> balanced (resample) -> parts
    (partition) -> packed (compress), as a recipe lays them out: root/<stage id>/."""
    root = tmp_path_factory.mktemp("report")
    raw = root / "raw.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in _rows(600)]
    lines[7] = '{"text": "broken'  # quarantined: invalid JSON
    lines[9] = '{"id": "x", "source": "web"}'  # quarantined: missing text
    raw.write_text("\n".join(lines) + "\n")
    inline = make_executor("local", workers=1)
    small_groups = WriteOptions(row_group_rows=40)
    steps = [
        ("shard", {"shard_rows": 150}, "shards"),
        ("dedup", {"method": "minhash", "threshold": 0.7}, "near"),
        ("resample", {"label": "label", "strategy": "oversample", "max_ratio": 5}, "balanced"),
        ("partition", {"key": "id", "partitions": 4}, "parts"),
        ("compress", {"codec": "zstd", "level": 9}, "packed"),
    ]
    previous = None
    for op, config, name in steps:
        where = {"inputs": [str(raw)]} if previous is None else {"input_path": previous}
        run_stage(op, config, root / name, executor=inline, write_options=small_groups, **where)
        previous = root / name
    return root


def _oracle_counts(values: list[float], edges: list[float]) -> list[int]:
    """numpy.histogram's rule, by hand: [e_i, e_i+1) and the last bin closed."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        i = bisect.bisect_right(edges, v) - 1
        if i == len(counts) and v == edges[-1]:
            i -= 1
        if 0 <= i < len(counts):
            counts[i] += 1
    return counts


def _meta(fig) -> dict:
    return fig.layout.meta


def _figures_by_title(sections) -> dict:
    return {f.layout.title.text: f for s in sections for f in s.figures()}


def test_histograms_match_an_independent_count(chain_dir: Path) -> None:
    packed = chain_dir / "packed"
    facts = collect_dataset(str(packed), categorical=CATEGORICAL)
    assert not facts.sampled
    figs = _figures_by_title(dataset_sections(facts, chain(str(packed), facts.manifest), 0))
    texts = column(packed, "text")
    lengths = [len(t) for t in texts]  # Python characters, not UTF-8 bytes
    assert any(len(t.encode()) != len(t) for t in texts)
    hist = _meta(figs["length of text (characters)"])
    assert hist["counts"] == _oracle_counts(lengths, hist["edges"])
    assert sum(hist["counts"]) == len(texts)
    quality = column(packed, "quality")
    hist = _meta(figs["quality"])
    assert hist["counts"] == _oracle_counts(quality, hist["edges"])
    n = column(packed, "n")  # integers 0..9: one bin per value
    assert _meta(figs["n"])["counts"] == [n.count(v) for v in range(10)]
    sources = column(packed, "source")
    assert _meta(figs["rows per source"])["counts"] == {s: sources.count(s) for s in set(sources)}


def test_lineage_rows_match_each_stage_manifest(chain_dir: Path) -> None:
    packed = chain_dir / "packed"
    steps = chain(str(packed), dataset.read_manifest(packed))
    assert [s.label for s in steps] == ["shard", "dedup", "resample", "partition", "compress"]
    names = ["shards", "near", "balanced", "parts", "packed"]
    for step, name in zip(steps, names, strict=True):
        assert step.path == str(chain_dir / name)
        assert step.rows_out == dataset.read_manifest(chain_dir / name).rows
        report = json.loads((chain_dir / name / ".report.json").read_text())
        assert step.rows_in == report["rows_in"]
    raw_lines = len((chain_dir / "raw.jsonl").read_text().splitlines())
    assert steps[0].rows_in == raw_lines
    assert steps[0].quarantine == {"invalid JSON": 1, "missing field 'text'": 1}
    assert steps[1].rows_out < steps[1].rows_in  # the near copies went
    from dataprep.report.sections import _raw_input

    raw = chain_dir / "raw.jsonl"
    assert _raw_input(steps[0]).text.startswith(f"raw input: 1 file, {raw.stat().st_size:,} bytes")


def test_stage_figures_match_their_reports(chain_dir: Path) -> None:
    packed = chain_dir / "packed"
    facts = collect_dataset(str(packed), categorical=CATEGORICAL)
    sections = dataset_sections(facts, chain(str(packed), facts.manifest), 0)
    figs = _figures_by_title(sections)
    dedup = json.loads((chain_dir / "near" / ".report.json").read_text())
    lsh = dedup["lsh"]
    curve = figs[f"LSH S-curve ({lsh['bands']} bands x {lsh['rows']} rows)"]
    xs, ys = list(curve.data[0].x), list(curve.data[0].y)
    for s, p in dedup_s_curve(lsh["bands"], lsh["rows"]).items():  # the dedup stage's own
        assert ys[xs.index(min(xs, key=lambda x: abs(x - float(s))))] == pytest.approx(p, abs=1e-4)
    rates = _meta(figs["duplicate rate per source"])["counts"]
    before, after = column(chain_dir / "shards", "source"), column(chain_dir / "near", "source")
    assert rates == {  # rows per source that dedup removed, counted independently
        s: round((before.count(s) - after.count(s)) / before.count(s), 4) for s in set(before)
    }
    sizes = figs["duplicate clusters by size"].data[0]
    assert dict(zip(sizes.x, sizes.y, strict=True)) == dedup["cluster_sizes"]
    resample = json.loads((chain_dir / "balanced" / ".report.json").read_text())
    before, after = figs["label before / after resample"].data
    assert dict(zip(before.x, before.y, strict=True)) == resample["classes_in"]
    assert dict(zip(after.x, after.y, strict=True)) == resample["classes_out"]
    parts = json.loads((chain_dir / "parts" / ".report.json").read_text())
    balance = figs["rows per partition"]  # from the partition stage's report
    assert _meta(balance)["rows"] == parts["partition_rows"]
    own = collect_dataset(str(chain_dir / "parts"))  # from the shards' partitions in its manifest
    assert list(own.partition_rows.values()) == parts["partition_rows"]
    own_figs = _figures_by_title(dataset_sections(own, chain(str(own.path), own.manifest), 0))
    assert _meta(own_figs["rows per partition"])["rows"] == parts["partition_rows"]
    compress = json.loads((chain_dir / "packed" / ".report.json").read_text())
    for name, sizes in facts.column_sizes.items():  # the compress stage's own footer sums
        assert sizes.compressed == compress["columns"][name]["after"]
        assert sizes.uncompressed == compress["columns"][name]["uncompressed"]


def test_source_counts_before_and_after_a_resample(chain_dir: Path, tmp_path: Path) -> None:
    packed = chain_dir / "packed"
    summary = build_report([str(packed)], str(tmp_path / "r.html"))
    assert summary.sections[0]["figures"] > 0
    from dataprep.report.build import _resample_sources

    steps = chain(str(packed), dataset.read_manifest(packed))
    _resample_sources(steps, CATEGORICAL, None, 10_000, 0)
    figs = _figures_by_title(dataset_sections(collect_dataset(str(packed)), steps, 0))
    shift = _meta(figs["source before / after resample"])
    for side, name in (("before", "near"), ("after", "balanced")):
        sources = column(chain_dir / name, "source")
        assert shift[side] == {s: sources.count(s) for s in set(sources)}
    assert "label before / after resample" in figs  # the label's own, from the report
    assert "label" not in {c for s in steps for c in s.before_after}


def test_sample_is_bounded_seeded_and_said(chain_dir: Path, tmp_path: Path) -> None:
    packed = chain_dir / "packed"
    rows = dataset.read_manifest(packed).rows
    a = collect_dataset(str(packed), sample_rows=100, seed=3, categorical=CATEGORICAL)
    b = collect_dataset(str(packed), sample_rows=100, seed=3, categorical=CATEGORICAL)
    assert a.sampled and a.sampled_rows == 100 < rows
    assert a.text_lengths.tolist() == b.text_lengths.tolist()
    assert a.sampled_row_groups < a.total_row_groups
    out = tmp_path / "r.html"
    summary = build_report([str(packed)], str(out), sample_rows=100, seed=3)
    page = out.read_text()
    assert "seeded sample (seed 3): 100 of" in page
    assert summary.sections[0]["sampled"] is True


def test_encrypted_dataset_without_and_with_key(chain_dir: Path, tmp_path: Path) -> None:
    enc, keys = encrypted_copy(chain_dir / "shards", tmp_path)
    locked = collect_dataset(str(enc))
    assert locked.text_lengths is None and not locked.column_sizes
    assert "encrypted" in locked.notes[0] and "--key-file" in locked.notes[0]
    opened = collect_dataset(str(enc), key_file=str(keys))
    assert "holds decrypted values" in opened.notes[0]
    plain = collect_dataset(str(chain_dir / "shards"))
    assert opened.text_lengths.tolist() == plain.text_lengths.tolist()
    out = tmp_path / "enc.html"
    build_report([str(enc)], str(out))
    assert "footers and values need --key-file" in out.read_text()


def _write_run(run: Path, steps: int = 30, gpu: bool = False) -> None:
    run.mkdir(parents=True)
    lines = []
    for step in range(1, steps + 1):
        record = {"step": step, "loss": 5.0 / step, "lr": 1e-3, "tokens_per_s": 1000.0 + step}
        record |= {"data_wait_frac": 0.1, "data_stall_frac": 0.05, "step_time_s": 0.2}
        if gpu:
            record |= {"gpu_mem_gb": 3.5, "mfu": 0.4, "dp_epsilon": step / 10}
        lines.append(json.dumps(record))
        if step % 10 == 0:
            lines.append(json.dumps({"step": step, "eval_loss": 6.0 / step}))
    lines.append('{"step": 31, "lo')  # torn by a kill
    (run / "metrics.jsonl").write_text("\n".join(lines))
    alert = {"time": "t", "step": 12, "rule": "loss_spike", "value": 9.5, "threshold": 3.0}
    (run / "alerts.jsonl").write_text(json.dumps(alert | {"message": "loss <b>spiked</b>"}) + "\n")


def test_training_run_curves_and_not_recorded(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run)
    out = tmp_path / "run.html"
    summary = build_report([str(run)], str(out))
    info = summary.sections[0]
    assert info["kind"] == "run" and info["records"] == 33
    assert info["not_recorded"] == ["gpu_mem_gb", "mfu"]
    page = out.read_text()
    assert "not recorded: GPU memory (GiB, peak), MFU" in page
    from dataprep.report.run import collect_run

    facts = collect_run(str(run))
    assert facts.series["eval_loss"] == ([10, 20, 30], [0.6, 0.3, 0.2])
    assert facts.series["loss"][1] == [5.0 / s for s in range(1, 31)]
    assert facts.bad_lines == 1
    assert facts.alerts_total == 1 and "loss &lt;b&gt;spiked&lt;/b&gt;" in page


def test_training_run_config_and_data_from_its_checkpoint(chain_dir: Path, tmp_path: Path) -> None:
    """The newest checkpoint's train_state.json names the config and the data (the keys
    dataprep.train.provenance.data_record writes)."""
    from dataprep.report.run import collect_run
    from dataprep.report.run_sections import run_sections

    run = tmp_path / "run"
    _write_run(run)
    packed = dataset.read_manifest(chain_dir / "packed")
    record = {"path": str(chain_dir / "packed"), "digest": packed.digest(), "rows": packed.rows}
    record["lineage"] = [e.to_json() for e in packed.lineage]
    for step, model in ((10, "old"), (20, "tiny")):
        folder = run / "checkpoints" / f"step-{step:08d}"
        folder.mkdir(parents=True)
        state = {"step": step, "world_size": 2, "config": {"model": model, "steps": 30}}
        (folder / "train_state.json").write_text(json.dumps(state | {"data": {"train": record}}))
    facts = collect_run(str(run))
    assert facts.checkpoint == "step-00000020" and facts.config["model"] == "tiny"
    tables = [b for s in run_sections(facts) for b in s.blocks if hasattr(b, "rows")]
    data = next(t for t in tables if t.header[0] == "data").rows
    assert data == [
        [
            "train",
            str(chain_dir / "packed"),
            packed.rows,
            packed.digest(),
            "shard > dedup > resample > partition > compress",
        ]
    ]
    setup = dict(next(t for t in tables if ("world_size", 2) in t.rows).rows)
    assert setup == {"model": "tiny", "steps": 30, "world_size": 2}


def test_training_run_extra_series(tmp_path: Path) -> None:
    from dataprep.report.run import collect_run
    from dataprep.report.run_sections import run_sections

    run = tmp_path / "run"
    _write_run(run, gpu=True)
    facts = collect_run(str(run))
    assert facts.missing() == [] and facts.extra() == ["dp_epsilon"]
    figs = _figures_by_title(run_sections(facts))
    assert list(figs["dp_epsilon"].data[0].y) == [s / 10 for s in range(1, 31)]
    assert {"loss", "GPU memory (GiB, peak)", "MFU", "tokens/s"} <= set(figs)


def test_cli_json_summary_and_bad_paths(chain_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "both.html"
    run = tmp_path / "run"
    _write_run(run, gpu=True)
    proc = cli("report", chain_dir / "near", run, "-o", out, "--json")
    summary = json.loads(proc.stdout)
    assert summary["path"] == str(out) and summary["bytes"] == out.stat().st_size
    assert [s["kind"] for s in summary["sections"]] == ["dataset", "run"]
    assert summary["sections"][1]["not_recorded"] == []
    missing = cli("report", tmp_path / "nope", "-o", out, check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataprepError, match="is neither a dataset directory"):
        build_report([str(tmp_path / "empty")], str(out))


def _browser():
    """Debian's chromium driven by playwright, or a reason why not (a failure under CI)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
        sync_playwright = None
    if shutil.which("chromium") is None:
        reason = "chromium is not installed (apt-get install chromium)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return sync_playwright


def test_page_renders_offline_in_chromium(chain_dir: Path, tmp_path: Path) -> None:
    sync_playwright = _browser()
    run = tmp_path / "run"
    _write_run(run, gpu=True)
    out = tmp_path / "page.html"
    summary = build_report([str(chain_dir / "packed"), str(run)], str(out))
    expected = sum(s["figures"] for s in summary.sections)
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def block(route) -> None:
                if route.request.url != out.as_uri():
                    requests.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            page.route("**/*", block)
            page.goto(out.as_uri(), wait_until="load")
            page.wait_for_function(
                f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= {expected}"
            )
            boxes = page.eval_on_selector_all(
                ".plotly-graph-div",
                "els => els.map(e => [e.id, e.getBoundingClientRect().width,"
                " e.getBoundingClientRect().height, e.querySelectorAll('.main-svg').length])",
            )
            # the compression-ratio figure, found by its title: a partitioned chain puts the
            # partition-balance figure first
            ratio = page.locator(".plotly-graph-div", has_text="compression ratio per column")
            bar = ratio.locator(".bars .point path").first
            bar.scroll_into_view_if_needed()
            box = bar.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            hover = ratio.locator(".hoverlayer .hovertext").first
            hover.wait_for()
            hover = hover.text_content()
        finally:
            browser.close()
    first = dataset.read_manifest(chain_dir / "packed").schema.names[0]
    sizes = collect_dataset(str(chain_dir / "packed")).column_sizes[first]
    assert (
        hover
        == f"{first}: x{sizes.ratio:.2f} ({sizes.uncompressed:,} -> {sizes.compressed:,} bytes)"
    )
    assert errors == []
    assert requests == []
    assert len(boxes) == expected > 10
    for fig_id, width, height, svgs in boxes:
        assert width > 0 and height > 0 and svgs > 0, fig_id


def test_dataset_on_s3_with_its_lineage(chain_dir: Path, s3_bucket: str, tmp_path: Path) -> None:
    """A remote dataset reads like a local one: footers, sample, ancestors beside it."""
    inline = make_executor("local", workers=1)
    packed, balanced = f"{s3_bucket}/packed", f"{s3_bucket}/balanced"
    run_stage("compress", {}, packed, input_path=chain_dir / "near", executor=inline)
    config = {"label": "label", "strategy": "oversample", "max_ratio": 5}
    run_stage("resample", config, balanced, input_path=packed, executor=inline)
    summary = build_report([balanced], str(tmp_path / "s3.html"))
    info = summary.sections[0]
    assert info["rows"] == dataset.read_manifest(balanced).rows and not info["sampled"]
    steps = chain(balanced, dataset.read_manifest(balanced))
    assert [s.path for s in steps[-2:]] == [packed, balanced]
    assert steps[-2].rows_out == dataset.read_manifest(packed).rows
    local = collect_dataset(str(chain_dir / "balanced"))
    remote = collect_dataset(balanced)
    assert sorted(remote.text_lengths.tolist()) == sorted(local.text_lengths.tolist())


def test_text_column_named_by_shard_and_odd_inputs(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"body": "é" * n, "k": n}) + "\n" for n in range(1, 50)))
    ds = tmp_path / "ds"
    inline = make_executor("local", workers=1)
    run_stage("shard", {"text_column": "body"}, ds, inputs=[str(raw)], executor=inline)
    facts = collect_dataset(str(ds), text=("body", "text"))  # what build_report passes
    assert facts.text_column == "body" and facts.text_lengths.tolist() == column(ds, "k")
    out = tmp_path / "r.html"
    assert "length of body (characters)" in (build_report([str(ds)], str(out)) and out.read_text())
    with pytest.raises(DataprepError, match="is a file: give a dataset directory"):
        build_report([str(ds / ".manifest.json")], str(out))
    enc, _keys = encrypted_copy(ds, tmp_path)
    other = tmp_path / "other.json"
    from dataprep import crypto

    crypto.generate_key_file(other)
    with pytest.raises(DataprepError, match="has no key"):
        build_report([str(enc)], str(out), key_file=str(other))


def test_lineage_follows_the_recorded_input_and_rows(chain_dir: Path, tmp_path: Path) -> None:
    """An ancestor elsewhere is found where the entry says its input was; a deleted one
    keeps the rows its entry recorded."""
    inline = make_executor("local", workers=1)
    away = tmp_path / "elsewhere" / "kept"
    run_stage("compress", {"codec": "zstd"}, away, input_path=chain_dir / "near", executor=inline)
    doc = json.loads((away / ".manifest.json").read_text())
    last = doc["lineage"][-1]
    last.setdefault("input", str(chain_dir / "near"))  # `dataprep lineage` records it
    (away / ".manifest.json").write_text(json.dumps(doc))
    steps = chain(str(away), dataset.read_manifest(away))
    assert steps[1].path == str(chain_dir / "near")
    assert steps[1].rows_out == dataset.read_manifest(chain_dir / "near").rows
    gone = dict(doc)
    gone["lineage"] = [
        {k: v for k, v in e.items() if k not in ("rows_in", "rows_out", "input")}
        for e in doc["lineage"]
    ]
    gone["lineage"][-1] |= {"input": str(tmp_path / "deleted"), "input_digest": "0" * 32}
    (away / ".manifest.json").write_text(json.dumps(gone))
    steps = chain(str(away), dataset.read_manifest(away))
    near_rows = dataset.read_manifest(chain_dir / "near").rows
    assert [s.path for s in steps] == [None, None, str(away)]
    assert steps[2].rows_in == steps[1].rows_out == near_rows  # from the compress report
    assert steps[1].rows_in is None and steps[0].rows_out is None  # nothing says
    gone["lineage"][1]["rows_in"] = 777  # what `dataprep lineage` records in each entry
    (away / ".manifest.json").write_text(json.dumps(gone))
    steps = chain(str(away), dataset.read_manifest(away))
    assert steps[1].rows_in == steps[0].rows_out == 777


def test_dataset_text_cannot_break_out_of_the_page() -> None:
    """Values from datasets (sources, ids, reasons) go into tables and plot JSON escaped."""
    from dataprep.report import figures, page

    hostile = "</script><script>alert(1)</script>"
    fig = figures.category_counts({hostile: 3}, "rows per source", "source")
    html = page.render(
        hostile, [page.Section(hostile, [fig, page.Table([hostile], [[hostile]])])], ""
    )
    assert hostile not in html and "<script>alert" not in html
    assert html.count("&lt;/script&gt;&lt;script&gt;alert(1)") == 5  # title, h1, h2, th, td


def test_missing_browser_skips_here_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser test: chromium"):
        _browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _browser()


def test_reads_only_footers_and_the_plotted_columns(
    chain_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never the whole table: `id` (a string nobody plots) is not read; with many shards only
    a seeded sample of footers is, and the notes say so."""
    import pyarrow.parquet as pq

    from dataprep.report import collect

    asked: list[list[str]] = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        asked.append(list(kwargs["columns"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(collect, "MAX_FOOTERS", 2)
    facts = collect_dataset(str(chain_dir / "packed"), categorical=CATEGORICAL)
    read = {c for cols in asked for c in cols}
    assert read == {"text", "quality", "n", "source", "label", "short"}
    assert facts.footers_read == 2 < len(facts.manifest.shards)
    assert any("footers of 2 of" in n for n in facts.notes)


def test_long_runs_are_thinned_and_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataprep.report import run as run_module

    monkeypatch.setattr(run_module, "MAX_POINTS", 7)
    _write_run(tmp_path / "run", steps=30)
    facts = run_module.collect_run(str(tmp_path / "run"))
    steps, values = facts.series["loss"]
    assert len(steps) <= 8 and steps[0] == 1 and steps[-1] == 30  # first and last kept
    assert values == [5.0 / s for s in steps] and facts.thinned["loss"] == 30


def test_empty_dataset_says_so(chain_dir: Path, tmp_path: Path) -> None:
    inline = make_executor("local", workers=1)
    empty = tmp_path / "none"
    run_stage("filter", {"where": "n > 100"}, empty, input_path=chain_dir / "near", executor=inline)
    summary = build_report([str(empty)], str(tmp_path / "e.html"))
    info = summary.sections[0]
    assert info["rows"] == 0 and info["notes"] == ["the dataset has no rows: no values to plot"]
    assert info["stages"][-1] == "filter"
