"""The DataLoader's conversion step over ready batches: the same values, without walking them.

With no `collate_fn`, torch's DataLoader runs `default_convert` on every batch, which for a
text column recurses into each of its strings (one Python call per row, a third of the CPU of
reading text). The batches are already tensors and lists, so ours leaves them as they are.
Oracle: the batches of the dataset iterated without a DataLoader, and `default_convert` itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

import torch.utils.data._utils.collate as torch_collate  # noqa: E402

from dataprep.loader import ShardDataset, make_dataloader  # noqa: E402
from dataprep.loader.dataloader import convert_batch  # noqa: E402

ROWS, BS = 300, 32


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("convert")
    ids = np.arange(ROWS, dtype=np.int64)
    table = pa.table(
        {
            "id": ids,
            "text": pa.array([f"row {i} " + "é" * (i % 7) for i in range(ROWS)]),
            "tags": pa.array([[i, i + 1] for i in range(ROWS)], pa.list_(pa.int32())),
        }
    )
    pq.write_table(table, out / "t.parquet", row_group_size=100)
    return out


def _expected(folder: Path) -> list[dict]:
    return list(ShardDataset(folder, batch_size=BS))


def _same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) == -(-ROWS // BS)
    for a, b in zip(got, want, strict=True):
        assert set(a) == set(b) == {"id", "text", "tags"}
        assert torch.equal(a["id"], b["id"])
        assert a["text"] == b["text"] and a["tags"] == b["tags"]
        assert all(type(s) is str for s in a["text"])


def test_no_collate_fn_means_no_walk_over_the_strings(
    text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = torch_collate.default_convert

    def counted(data):  # the recursion inside default_convert goes through this name too
        calls.append(type(data))
        return original(data)

    monkeypatch.setattr(torch_collate, "default_convert", counted)
    got = list(make_dataloader(ShardDataset(text, batch_size=BS), num_workers=0))
    _same(got, _expected(text))
    assert len(calls) <= len(got)  # at most once per batch, never once per row


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_the_datasets_own(text: Path, workers: int) -> None:
    _same(
        list(make_dataloader(ShardDataset(text, batch_size=BS), num_workers=workers)),
        _expected(text),
    )


def test_convert_batch_agrees_with_default_convert() -> None:
    batch = {
        "n": torch.arange(4),
        "s": ["a", "b"],
        "nested": [[1, 2], {"k": "v"}],
        "arr": np.arange(3, dtype=np.float32),
        "when": np.array(["2024-01-01"], dtype="datetime64[D]").astype(object),
    }
    got, want = convert_batch(batch), torch_collate.default_convert(batch)
    assert set(got) == set(want)
    for key in batch:
        if isinstance(want[key], torch.Tensor):
            assert torch.equal(got[key], want[key])
        elif isinstance(want[key], np.ndarray):
            assert np.array_equal(got[key], want[key])
        else:
            assert got[key] == want[key]
    assert convert_batch([np.arange(2)])[0].tolist() == [0, 1]  # not a dict: default_convert
