"""Review (H4) of `ShardDataset.load_state_dict` on a state that is not one it saved (edited,
truncated, written by hand or by another tool).

`next_batch` past the epoch resumed silently into an empty epoch, 1.5 or True were truncated
to a position the run never stood at, and a negative or missing entry was an IndexError or
KeyError deep in the reader. Each is now one sentence naming the entry; the end of an epoch
(next_batch == its batches) stays a valid, empty resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataprep.errors import DataprepError
from dataprep.runner import run_stage

pytest.importorskip("torch")
from dataprep.loader import ShardDataset  # noqa: E402

ROWS, BATCH = 30, 4  # 8 batches, the last one short


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("state")
    lines = Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()
    raw = root / "raw.jsonl"
    raw.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": lines[i]}) + "\n" for i in range(ROWS))
    )
    run_stage("shard", {"shard_rows": 7}, root / "ds", inputs=[str(raw)])
    return root / "ds"


def _reader(data: Path) -> ShardDataset:
    return ShardDataset(data, columns=["id"], batch_size=BATCH, shuffle=True, seed=3)


def _saved(data: Path) -> dict:
    reader = _reader(data)
    batches = iter(reader)
    next(batches), next(batches)
    return reader.state_dict()


def test_a_saved_state_and_the_end_of_an_epoch_resume(data: Path) -> None:
    state = _saved(data)
    reader = _reader(data)
    reader.load_state_dict(state)
    assert sum(len(b["id"]) for b in reader) == ROWS - 2 * BATCH
    reader = _reader(data)
    reader.load_state_dict({**state, "next_batch": 8})
    assert list(reader) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("next_batch", 9), ("next_batch", -1), ("next_batch", 1.5), ("next_batch", True),
     ("epoch", "1"), ("epoch", None), ("lanes", 0), ("window_rows", 2.5)],
)  # fmt: skip
def test_a_state_it_did_not_save_is_one_sentence(data: Path, key: str, value: object) -> None:
    state = _saved(data)
    if value is None:
        del state[key]
    else:
        state[key] = value
    with pytest.raises(DataprepError, match=f"the loader state has {key} .*not one it saved"):
        _reader(data).load_state_dict(state)


@pytest.mark.parametrize("edit", ["no sources", "one source short", "negative next_batch"])
def test_a_mix_state_it_did_not_save_is_one_sentence(data: Path, edit: str) -> None:
    """A mixture's state without its per-source states (or one short) was a KeyError or a
    zip() ValueError; a negative position was taken as given."""
    from dataprep.loader.mix import MixedDataset

    def mix() -> MixedDataset:
        return MixedDataset({"a": _reader(data), "b": _reader(data)}, seed=1)

    saved = mix()
    next(iter(saved))
    state = saved.state_dict()
    if edit == "no sources":
        del state["sources"]
    elif edit == "one source short":
        state["sources"] = state["sources"][:1]
    else:
        state["next_batch"] = -2
    with pytest.raises(DataprepError, match="the mix's loader state has a bad"):
        mix().load_state_dict(state)
