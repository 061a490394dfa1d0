"""Exact fingerprints through the dedup kernel are bit-identical to the Arrow reference.

The oracle is the fingerprint code as it stood before the kernel (Arrow normalisation, then
xxh3-128 of each Python string), copied here so that no change to the library can move it:
saved dedup indexes hold these values. Real text from this machine (licences, copyright
files, man pages, translation catalogues) with every Unicode whitespace Arrow splits on."""

from __future__ import annotations

import glob
import gzip
import itertools
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xxhash

from dataprep.stages.dedup import exact, minhash

STEPS = ("nfkc", "lowercase", "punctuation", "whitespace")
SPACES = (  # every code point Arrow splits on
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
ODD = "\u200b\ufeff\x00\x7f\u00ad\ufb01\uff21\u2460\u212a\u0130\u03a3\u00df\u1e9e"


def oracle(columns: list[pa.Array], steps: list[str]) -> np.ndarray:
    """normalise.fingerprints before the kernel, verbatim (Arrow compute + per-row xxh3)."""

    def normalise(text: pa.Array) -> pa.Array:
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        if pa.types.is_large_string(text.type):
            text = text.cast(pa.string())
        if "nfkc" in steps:
            text = pc.utf8_normalize(text, "NFKC")
        if "lowercase" in steps:
            text = pc.utf8_lower(text)
        if "punctuation" in steps:
            text = pc.replace_substring_regex(text, r"[\p{P}\p{S}]+", " ")
        if "whitespace" in steps:
            text = pc.binary_join(pc.utf8_split_whitespace(text), pa.scalar(" "))
            text = pc.utf8_trim_whitespace(text)
        return text

    parts = []
    for column in columns:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())
        parts.append(pc.fill_null(normalise(column), pa.scalar("\x00")))
    sep = pa.scalar("\x1f")
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, sep)
    raw = b"".join(xxhash.xxh3_128_digest(s.encode()) for s in joined.to_pylist())
    return np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)


def _catalogue_strings(path: str) -> list[str]:
    """msgstr/msgid texts of a GNU .mo file (its string table: offsets and lengths)."""
    raw = Path(path).read_bytes()
    if len(raw) < 28 or raw[:4] not in (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde"):
        return []
    order = "<" if raw[:4] == b"\xde\x12\x04\x95" else ">"
    count, originals, translations = np.frombuffer(raw[8:20], order + "u4")
    out = []
    for table in (originals, translations):
        entries = np.frombuffer(raw[table : table + 8 * count], order + "u4").reshape(-1, 2)
        for length, offset in entries[:200]:
            out.append(raw[offset : offset + length].decode("utf-8", "replace"))
    return out


def real_text() -> list[str]:
    rng = random.Random(19)
    texts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*"))[:12]:
        texts.append(Path(path).read_text("utf-8", "replace"))
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:60]:
        texts.append(Path(path).read_text("utf-8", "replace"))
    for path in sorted(glob.glob("/usr/share/man/**/*.gz", recursive=True))[:40]:
        texts.append(gzip.open(path).read().decode("utf-8", "replace")[:6000])
    for path in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))[:80]:
        texts.extend(_catalogue_strings(path)[:40])
    assert len(texts) > 200
    docs = []
    for text in texts:  # pieces of several sizes, every whitespace kind and odd character mixed in
        for _ in range(3):
            a = rng.randrange(0, max(1, len(text)))
            piece = list(text[a : a + rng.choice((0, 1, 5, 40, 300, 3000))])
            for _ in range(rng.randrange(0, 6)):
                at = rng.randrange(0, len(piece) + 1)
                extra = SPACES + ODD + "!?.,;-- "
                piece[at:at] = "".join(rng.choice(extra) for _ in range(rng.randrange(1, 4)))
            docs.append("".join(piece))
    docs += ["", " ", SPACES, ODD, "A\u3000B", "\x00", "X" + SPACES + "Y" + SPACES, "..!!a--b??"]
    docs += [c for c in SPACES + ODD] + ["Ab" + c + "Cd" + c for c in SPACES]
    return docs


DOCS = real_text()


def _column(seed: int, nulls: bool) -> pa.Array:
    rng = random.Random(seed)
    values: list[str | None] = [rng.choice(DOCS) for _ in range(len(DOCS))]
    if nulls:
        for i in rng.sample(range(len(values)), len(values) // 10):
            values[i] = None
    return pa.array(values, pa.string())


def _kernel():
    kernel = minhash.kernel_module()
    if kernel is None:
        pytest.skip("the dedup kernel cannot be built here")
    return kernel


ALL_STEPS = [list(c) for r in range(len(STEPS) + 1) for c in itertools.combinations(STEPS, r)]


@pytest.mark.parametrize("steps", ALL_STEPS, ids=lambda s: "+".join(s) or "none")
def test_kernel_fingerprints_equal_the_oracle_on_real_text(steps):
    kernel = _kernel()
    one = _column(1, nulls=True)
    two = _column(2, nulls=True)
    got = exact.kernel_fingerprints(kernel, [one], steps)
    assert np.array_equal(got, oracle([one], steps))
    joined = exact.kernel_fingerprints(kernel, [one, two], steps)
    assert np.array_equal(joined, oracle([one, two], steps))


@pytest.mark.parametrize("steps", [list(STEPS), ["whitespace"], []], ids=str)
def test_arrow_fallback_equals_the_oracle(steps, monkeypatch):
    monkeypatch.setenv("DATAPREP_DEDUP_KERNEL", "numpy")
    cols = [_column(3, nulls=True), _column(4, nulls=False)]
    assert np.array_equal(exact.fingerprints(cols, steps, compiled=True), oracle(cols, steps))
    assert np.array_equal(exact.fingerprints(cols[:1], steps), oracle(cols[:1], steps))


def test_kernel_handles_slices_chunks_large_strings_and_other_types():
    kernel = _kernel()
    steps = list(STEPS)
    col = _column(5, nulls=True)
    sliced = col.slice(7, 300)
    chunked = pa.chunked_array([col.slice(0, 50), col.slice(50, 80)])
    large = col.cast(pa.large_string())
    ints = pa.array([1, None, -3] * 100, pa.int64())
    for cols in ([sliced], [chunked], [large], [ints], [sliced, ints.slice(0, 300)]):
        assert np.array_equal(exact.kernel_fingerprints(kernel, cols, steps), oracle(cols, steps))
    empty = pa.array([], pa.string())
    assert exact.kernel_fingerprints(kernel, [empty], steps).shape == (0, 2)


def test_stage_path_uses_the_kernel_when_forced(monkeypatch):
    """DATAPREP_DEDUP_KERNEL=numba (or the driver's choice) takes the kernel: same values."""
    _kernel()
    monkeypatch.setenv("DATAPREP_DEDUP_KERNEL", "numba")
    calls = []
    real = exact.kernel_fingerprints
    monkeypatch.setattr(exact, "kernel_fingerprints", lambda *a: calls.append(1) or real(*a))
    col = _column(6, nulls=False)
    assert np.array_equal(exact.fingerprints([col], list(STEPS)), oracle([col], list(STEPS)))
    assert calls


@pytest.mark.parametrize("method", ["exact", "both"])
def test_the_stage_removes_the_same_rows_with_and_without_the_kernel(method, tmp_path, monkeypatch):
    """`dedup --method exact|both`: the driver's kernel choice changes no output byte, and
    copies that differ only in case, NFKC form or whitespace kind are removed either way."""
    import json

    from dataprep.dataset import read_manifest
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    _kernel()
    monkeypatch.delenv("DATAPREP_DEDUP_KERNEL", raising=False)
    inline = make_executor("local", workers=1)
    raw = tmp_path / "raw"
    raw.mkdir()
    base = list(dict.fromkeys(d for d in DOCS if len(d.split()) > 3))[:150]
    variants = (
        ["\u3000" + d.upper().replace(" ", "\u00a0\x1c ") + "\n" for d in base[:40]]
        + ["\uff21" + d for d in base[40:60]]
        + ["A" + d for d in base[40:60]]
    )
    rows = [{"text": t} for t in base + variants]
    (raw / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = tmp_path / "src"
    run_stage("shard", {"shard_rows": 100}, src, inputs=[str(raw)], executor=inline)
    calls = []
    real = exact.kernel_fingerprints
    monkeypatch.setattr(exact, "kernel_fingerprints", lambda *a: calls.append(1) or real(*a))
    shards, removed = {}, {}
    for name, limit in (("arrow", 1 << 50), ("kernel", 1)):
        monkeypatch.setattr(minhash, "KERNEL_MIN_TEXT_BYTES_PER_WORKER", limit)
        calls.clear()
        run = run_stage(
            "dedup", {"method": method}, tmp_path / name, input_path=src, executor=inline
        )
        assert bool(calls) == (name == "kernel"), name
        removed[name] = run.report["rows_in"] - run.report["rows_out"]
        shards[name] = [s.xxh3_128 for s in read_manifest(str(tmp_path / name)).shards]
    assert shards["arrow"] == shards["kernel"]
    # 40 case/whitespace copies (a few upper() forms do not lower back) + 20 NFKC copies
    assert removed["arrow"] == removed["kernel"] >= 50


EDGE_COLUMNS = [
    [pa.array([None, None], pa.string())],
    [pa.array(["", ""])],
    [pa.nulls(3, pa.int64())],
    [pa.array(["a", None]), pa.nulls(2, pa.string())],
    [pa.array([" x ", "\u3000", "\x1c\x1f"], pa.large_string())],
    [pa.array(["Ab", "c", "Ab"]).dictionary_encode()],
]


@pytest.mark.parametrize("cols", EDGE_COLUMNS, ids=range(len(EDGE_COLUMNS)))
@pytest.mark.parametrize("steps", [list(STEPS), [], ["punctuation"]], ids=str)
def test_all_null_empty_and_encoded_columns(cols, steps):
    assert np.array_equal(exact.kernel_fingerprints(_kernel(), cols, steps), oracle(cols, steps))


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_a_binary_column_of_non_text_bytes_is_one_sentence(tmp_path: Path, kernel: str) -> None:
    """Bytes that are not UTF-8 cannot be hashed as a text cell: exit 2 and one sentence
    naming the shard and the columns, not an ArrowInvalid traceback (either path)."""
    import pyarrow.parquet as pq
    from helpers import cli

    src = tmp_path / "in"
    src.mkdir()
    raw = pa.array([b"\xff\x00", b"ok", b"\xff\x00"], pa.binary())
    pq.write_table(pa.table({"text": ["alpha", "beta", "alpha"], "raw": raw}), src / "a.parquet")
    cli("shard", src, "-o", tmp_path / "shards", "-q", "-w", "1")
    proc = cli(
        "dedup", tmp_path / "shards", "-o", tmp_path / "out", "-q", "-w", "1", "--method",
        "exact", "--columns", "text,raw", check=False, env={"DATAPREP_DEDUP_KERNEL": kernel},
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert "--columns text,raw holds bytes that are not UTF-8 text" in proc.stderr
