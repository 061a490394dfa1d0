"""Run one stage with the dataset contract around it: cache, resume, report, manifest last.

Both the CLI and the recipe runner call `run_stage`, so a stage behaves the same from a shell,
a recipe, or Python.
"""

from __future__ import annotations

import functools
import json
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ParamSpec

import pyarrow.fs as pafs

from dataprep import commit, dataset
from dataprep.dataset import Manifest, ReadOptions, WriteOptions
from dataprep.errors import DataprepError
from dataprep.executors import Executor
from dataprep.executors.sizing import local_bytes
from dataprep.executors.spec import ExecutorSpec
from dataprep.lineage import flow
from dataprep.lock import OutputLock
from dataprep.observe import stage_metrics
from dataprep.overlap import check_output
from dataprep.progress import Reporter, install
from dataprep.stage import StageConfig, StageContext, check_columns, cli_flag
from dataprep.stages import get_stage
from dataprep.storage import StoragePath, as_path


@dataclass
class StageRun:
    """The outcome of `run_stage`: whether it ran or was already up to date, and its report."""

    stage_id: str
    op: str
    out: StoragePath
    status: str  # "ran" | "cached"
    report: dict[str, Any] = field(default_factory=dict)


P = ParamSpec("P")


def config_digest(config: StageConfig, write_options: WriteOptions) -> str:
    return write_options.config_digest(config.model_dump(mode="json"))


def validate_config(op: str, params: dict[str, Any] | StageConfig) -> StageConfig:
    stage = get_stage(op)
    if isinstance(params, StageConfig):
        return params
    return stage.Config.parse(params, where=f"{op} options")


def _metered(run: Callable[P, StageRun]) -> Callable[P, StageRun]:
    """Stage metrics around a run when `--metrics-port` turned them on: the run gets a
    recorder, which learns how it ended (failed, cached or ran, with its report)."""

    @functools.wraps(run)
    def metered(*args: P.args, **kwargs: P.kwargs) -> StageRun:
        op = str(args[0] if args else kwargs["op"])
        recorder = stage_metrics.begin(str(kwargs.get("stage_id") or op), op)
        if recorder is None:  # None unless metrics are served
            return run(*args, **kwargs)
        kwargs["recorder"] = recorder
        try:
            done = run(*args, **kwargs)
        except BaseException:
            recorder.finish("failed")
            raise
        recorder.finish(done.status, done.report)
        return done

    return metered


@_metered
def run_stage(
    op: str,
    config: StageConfig | dict[str, Any],
    out: str | Path | StoragePath,
    *,
    input_path: str | Path | StoragePath | None = None,
    inputs: Sequence[str] = (),
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    write_options: WriteOptions = WriteOptions(),
    force: bool = False,
    stage_id: str | None = None,
    key_file: str | None = None,
    recorder: stage_metrics.StageRecorder | None = None,
) -> StageRun:
    started = time.time()
    t0 = time.perf_counter()
    stage = get_stage(op)
    config = validate_config(op, config)
    out = as_path(out)
    stage_id = stage_id or op
    reporter = reporter or Reporter(quiet=True)

    input_manifest: Manifest | None = None
    input_root: StoragePath | None = None
    if stage.reads_dataset:
        if input_path is None:
            raise DataprepError(f"stage {stage_id!r} needs an input dataset directory")
        input_root = as_path(input_path)
        check_output(out, dataset=input_root)  # before anything reads or touches either
        input_manifest = dataset.read_manifest(input_root)
        check_columns(stage, config, input_manifest.schema, cli_flag)  # before OUT exists
        input_digest = input_manifest.digest()
        if recorder is not None:  # bytes read per task, without a request per file
            recorder.input_sizes(
                {str(input_root / sh.path): sh.bytes for sh in input_manifest.shards}
            )
        if not stage.writes_plaintext:
            write_options = _keep_encryption(input_manifest, key_file, write_options)
    else:
        check_output(out, raw=inputs)
        input_digest = stage.input_digest(config, inputs)
    cfg_digest = config_digest(config, write_options)

    created = commit.missing_folders(out)  # removed again if this run fails having written nothing
    lock = OutputLock(out)  # one writer per output, from here to its manifest
    try:
        lock.acquire()
    except OSError:  # storage this run may not write to: fine while there is nothing to write
        if not force and _is_up_to_date(out, input_digest, cfg_digest):
            return StageRun(stage_id, op, out, "cached", _read_report(out))
        raise
    try:
        commit.roll_forward(out)  # a swap a kill cut short is finished before anything else
        if not force and _is_up_to_date(out, input_digest, cfg_digest):
            report = _read_report(out)
            return StageRun(stage_id, op, out, "cached", report)
        # a finished OUT stays readable: the new run is staged and swapped in once committed
        target = commit.prepare(out, {"input_digest": input_digest, "config_digest": cfg_digest})
        owns_executor = executor is None
        executor = executor or ExecutorSpec().build()
        metered = executor if recorder is None else recorder.executor(executor)
        ctx = StageContext(
            config,
            target,
            metered,
            reporter,
            input_root=input_root,
            input_manifest=input_manifest,
            inputs=inputs,
            write_options=write_options,
            description=stage_id,
            read_options=_read_options(input_manifest, key_file, write_options),
        )
        previous_sink = install(
            reporter.on_tick if recorder is None else recorder.sink(reporter.on_tick)
        )
        # LocalExecutor: a small input runs in-process, where a task that kills its process
        # takes the command with it (no "worker died ... rerun" sentence): only for the
        # stages shipped here, never for a plugin's code
        expect = getattr(executor, "expect_input", None) if _shipped(stage) else None
        if expect is not None:
            expect(_input_bytes(input_manifest, inputs, getattr(executor, "inline_below", 0)))
        try:
            result = stage.run(ctx)
        finally:
            install(previous_sink)
            if expect is not None:
                expect(None)
            if owns_executor:
                executor.close()

        commit.remove_temp_files(target)  # a failed, retried task may have left its temp shard
        quarantined = _collect_quarantine(target)
        report = {
            "stage": op,
            "id": stage_id,
            "rows_in": result.report.get("rows_in", 0),
            "rows_out": sum(s.rows for s in result.shards),
            "quarantined": quarantined,
            "seconds": round(time.perf_counter() - t0, 3),
            "shards": len(result.shards),
            "bytes_out": sum(s.bytes for s in result.shards),
        }
        for key, value in result.report.items():
            report.setdefault(key, value)
        lineage = list(input_manifest.lineage) if input_manifest else []
        lineage.append(
            dataset.lineage_entry(
                op,
                stage_id,
                config.model_dump(mode="json"),
                input_digest,
                cfg_digest,
                started,
                **flow(input_root, inputs, input_manifest, report),
            )
        )
        encryption = result.encryption
        if encryption is None and write_options.encryption is not None:
            encryption = write_options.encryption.manifest(result.schema)
        metadata = {
            **(input_manifest.metadata if input_manifest else {}),
            **(result.metadata or {}),
        }
        if encryption is not None:
            report["encryption"] = _encryption_summary(input_manifest, encryption)
        dataset.write_json_atomic(target / dataset.REPORT, report)
        manifest = Manifest(result.schema, result.shards, lineage, encryption, metadata)
        lock.check()
        commit.publish(out, target, manifest)  # manifest last; a staged run is swapped in
    except BaseException:
        if commit.discard_unfinished(out, created):  # it failed before committing any task
            lock.release()
            commit.remove_folders(created)
        raise
    finally:
        lock.release()
    return StageRun(stage_id, op, out, "ran", report)


def _shipped(stage: Any) -> bool:
    return type(stage).__module__.startswith("dataprep.")


def _input_bytes(
    manifest: Manifest | None, inputs: Sequence[str], enough: int = 1 << 30
) -> int | None:
    """The stage's input size: its manifest's shard bytes, or its raw inputs' sizes where all
    are local (None when unknown: a remote input, or none)."""
    if manifest is not None:
        return sum(s.bytes for s in manifest.shards)
    return local_bytes(inputs, enough)


def _encryption_summary(
    input_manifest: Manifest | None, encryption: dict[str, Any]
) -> dict[str, list[str]]:
    """Which columns the output encrypts, and which encrypted columns the stage dropped or
    added (tokenize: `text` dropped, `tokens` added and encrypted)."""
    columns = [c for cols in encryption.get("column_keys", {}).values() for c in cols]
    summary: dict[str, list[str]] = {"columns": columns}
    before = input_manifest.encryption if input_manifest is not None else None
    if before is not None:
        old = [c for cols in before.get("column_keys", {}).values() for c in cols]
        summary["dropped"] = [c for c in old if c not in columns]
        summary["added"] = [c for c in columns if c not in old]
    return summary


def _keep_encryption(
    manifest: Manifest, key_file: str | None, write_options: WriteOptions
) -> WriteOptions:
    """Encrypted in, encrypted out: no stage but decrypt silently writes plaintext.

    The output's schema may differ from the input's (tokenize writes `tokens` from `text`), so
    the rule is by exclusion: every output column is encrypted unless the input kept it in the
    clear; a column derived from encrypted ones is then encrypted too."""
    if manifest.encryption is None:
        return write_options
    clear = tuple(manifest.encryption.get("plaintext_columns") or ())
    spec = write_options.encryption
    if spec is None:
        if key_file is None:
            return write_options  # without a key the stage fails when it opens a shard
        from dataprep.crypto import EncryptionSpec

        spec = EncryptionSpec.from_manifest(str(key_file), manifest.encryption)
    elif spec.columns is not None:  # a recipe's output.encryption.columns: those, and the new
        clear = tuple(c for c in clear if c not in spec.columns)
    # each input column stays under the master key it had (per-column keys); new ones: default
    keyed = manifest.encryption.get("column_keys") or {}
    assigned = tuple((c, k) for k, cols in keyed.items() for c in cols)
    spec = replace(spec, columns=None, plaintext=clear, assigned=assigned)
    return replace(write_options, encryption=spec)


def _read_options(
    manifest: Manifest | None, key_file: str | None, write_options: WriteOptions
) -> ReadOptions:
    """An encrypted input is read with the given key file, else the output's key file."""
    if manifest is None or manifest.encryption is None:
        return ReadOptions()
    if key_file is None and write_options.encryption is not None:
        key_file = write_options.encryption.key_file
    return ReadOptions(str(key_file) if key_file else None, manifest.encryption)


def _is_up_to_date(out: StoragePath, input_digest: str, cfg_digest: str) -> bool:
    """The output's manifest (checked as every reader checks it) records this input and config,
    and every shard it lists is there with its recorded size: a deleted or truncated shard, or
    an edited manifest, reruns the stage instead of counting as cached."""
    try:
        manifest = dataset.read_manifest(out)
    except (DataprepError, OSError):
        return False
    last = manifest.lineage[-1] if manifest.lineage else None
    recorded = (last.get("input_digest"), last.get("config_digest")) if last else None
    if recorded != (input_digest, cfg_digest):
        return False
    sizes = _file_sizes(out)
    return all(sizes.get(s.path) == s.bytes for s in manifest.shards)


def _file_sizes(folder: StoragePath) -> dict[str, int]:
    """Name -> size of the files directly in `folder`: one listing, also on object stores."""
    from dataprep.storage import resolve

    filesystem, path = resolve(str(folder))
    selector = pafs.FileSelector(path, allow_not_found=True)
    infos = filesystem.get_file_info(selector)
    return {posixpath.basename(i.path): i.size for i in infos if i.type == pafs.FileType.File}


def _read_report(out: StoragePath) -> dict[str, Any]:
    """A finished output's report; {} when it is missing or damaged (not an object, or a count
    that is not a number): the summary of a cached rerun is then blank, not a traceback."""
    try:
        report = json.loads(dataset.existing_file(out, dataset.REPORT).read_text())
    except (OSError, ValueError):
        return {}
    counts = ("rows_in", "rows_out", "quarantined", "seconds", "shards", "bytes_out")
    sane = isinstance(report, dict) and all(
        isinstance(report.get(k, 0), int | float) and not isinstance(report.get(k), bool)
        for k in counts
    )
    return report if sane else {}


def _collect_quarantine(out: StoragePath) -> int:
    """Concatenate per-task quarantine files into OUT/.quarantine.jsonl in task order."""
    parts = (out / dataset.WORK_DIR / "quarantine").glob("*.jsonl")
    target = out / dataset.QUARANTINE
    if not parts:
        target.unlink()
        return 0
    count = 0
    with target.open_output() as dst:
        for part in parts:
            data = part.read_bytes()
            dst.write(data)
            count += data.count(b"\n")
    return count
