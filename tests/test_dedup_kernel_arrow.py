"""dataprep/arrow_np.py against pyarrow's own conversions (the oracle), and the promise it is
for: a process that signs with the dedup kernel never imports pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dataprep import arrow_np


def _boolean_arrays() -> list[pa.Array | pa.ChunkedArray]:
    rng = np.random.default_rng(5)
    out: list[pa.Array | pa.ChunkedArray] = []
    for n in (0, 1, 7, 8, 9, 63, 64, 65, 1000):
        values = rng.random(n) < 0.5
        nulls = rng.random(n) < 0.3
        full = pa.array(values.tolist(), pa.bool_())
        holes = pa.array(
            [None if z else bool(v) for v, z in zip(values, nulls, strict=True)], pa.bool_()
        )
        out += [full, holes]
        if n > 10:
            out += [full.slice(3, n - 5), holes.slice(5, n - 9), pa.chunked_array([holes, full])]
    out.append(pa.chunked_array([], pa.bool_()))
    return out


@pytest.mark.parametrize("null", [False, True])
def test_bools_equal_pyarrows_fill_null_to_numpy(null) -> None:
    for array in _boolean_arrays():
        want = pc.fill_null(array, null).to_numpy(zero_copy_only=False)
        got = arrow_np.bools(array, null=null)
        assert got.dtype == bool and np.array_equal(got, want), array


def test_valid_equals_is_valid_to_numpy() -> None:
    strings = pa.array(["a", None, "b", None, None, "c", "", None, "d"] * 9)
    cases = _boolean_arrays() + [strings, strings.slice(3, 40), pa.nulls(5), pa.array([1, None])]
    for array in cases:
        want = pc.is_valid(array).to_numpy(zero_copy_only=False)
        got = arrow_np.valid(array)
        assert got.dtype == bool and np.array_equal(got, want)


def test_mask_int64s_and_string_equal_pa_array_and_scalar() -> None:
    rng = np.random.default_rng(2)
    for n in (0, 1, 8, 13, 100):
        flags = rng.random(n) < 0.5
        assert arrow_np.mask(flags).equals(pa.array(flags))
        rows = rng.integers(-5, 1 << 40, n)
        assert arrow_np.int64s(rows).equals(pa.array(rows, pa.int64()))
        assert arrow_np.int64s(rows[::2]).equals(pa.array(rows[::2], pa.int64()))
    for text in ("", "\n", "日本 ß"):
        assert arrow_np.string(text).equals(pa.scalar(text))
    for texts in ([], [""], ["a", "", "日本 ß", "x" * 1000]):
        assert arrow_np.strings(texts).equals(pa.array(texts, pa.string()))
    with pytest.raises(TypeError, match="boolean"):
        arrow_np.bools(pa.array([1, 2]))


def test_ints_equal_to_numpy() -> None:
    rng = np.random.default_rng(4)
    for kind in (pa.int8(), pa.int32(), pa.int64(), pa.uint32(), pa.uint64()):
        for n in (0, 1, 9, 100):
            array = pa.array(rng.integers(0, 100, n), kind)
            for case in (array, array.slice(min(n, 3)), pa.chunked_array([array, array], kind)):
                got = arrow_np.ints(case)
                assert got.dtype == case.type.to_pandas_dtype()
                assert np.array_equal(got, case.to_numpy())
    for bad in (pa.array([1, None]), pa.array([1.5]), pa.array(["a"])):
        with pytest.raises(TypeError, match="integers without nulls"):
            arrow_np.ints(bad)


@pytest.mark.parametrize("compiled", [True, False])
def test_signing_never_imports_pandas(tmp_path, compiled) -> None:
    """pyarrow imports pandas at its first pa.array/pa.scalar/to_numpy (~0.15 s of CPU): the
    kernel's path and the numpy path (Parquet in, signatures and band keys out, non-ASCII
    text, nulls, the whitespace step) do not."""
    pytest.importorskip("dataprep.stages.dedup.kernel")
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    docs = ["Hello, World! the quick brown fox", None, "Straße ﬁne 日本語 nbsp\u00a0x", ""] * 50
    pq.write_table(pa.table({"text": docs}), path)
    code = (
        "import sys, pyarrow.parquet as pq\n"
        "from dataprep.stages.dedup import minhash\n"
        f"text = pq.ParquetFile({str(path)!r}).read().column('text')\n"
        "for steps in (['nfkc', 'lowercase'], ['nfkc', 'lowercase', 'punctuation'], [],\n"
        "              ['nfkc', 'whitespace']):\n"
        "    for char in (None, 3):\n"
        f"        sig, _ = minhash.sign_text(text, steps, 'fast', 64, 1, 5, char, {compiled})\n"
        "        minhash.band_keys(sig, 8, 8, 1)\n"
        f"assert bool(minhash._KERNEL) == {compiled}\n"
        "print('PANDAS' if 'pandas' in sys.modules else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.stdout.strip() == "CLEAN", out.stdout[-500:] + out.stderr[-2000:]
