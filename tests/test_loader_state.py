"""The loader's resume protocol: `ReadPosition`, and states written by the previous version.

The `V1_*` states below are literally what dataprep 1 (before `ReadPosition`) wrote into
checkpoints for the fixture data; they must keep loading, and continue to exactly the rest of
an uninterrupted pass in version 1's order (the oracle: the same pass read without stopping
with version 1's lane cuts, whose lane starts are recorded below from that version). A run
that continues a version-1 state writes the same dict, so its checkpoints stay readable both
ways; a fresh run writes version 2 (`lane_cuts`), which version 1 refuses in one sentence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from dataprep.errors import DataprepError  # noqa: E402
from dataprep.loader import ReadPosition, ShardDataset, make_dataloader  # noqa: E402

_ORDER = {"batch_size": 8, "seed": 4, "shuffle": True, "lanes": 4, "window_rows": 32}
V1_PLAIN = {"version": 1, "epoch": 2, "next_batch": 7, **_ORDER, "rows": 423, "world_size": 1}
V1_RANK1 = {"version": 1, "epoch": 0, "next_batch": 10, **_ORDER, "rows": 423, "world_size": 2}
V1_MIX = {
    "version": 1,
    "mix": ["web", "code"],
    "epoch": 0,
    "next_batch": 9,
    "seed": 4,
    "weights": [0.6666666666666666, 0.3333333333333333],
    "sources": [
        {"version": 1, "epoch": 0, "next_batch": 0, **_ORDER, "rows": 423, "world_size": 1},
        {"version": 1, "epoch": 0, "next_batch": 0, **_ORDER, "rows": 200, "world_size": 1},
    ],
    "world_size": 1,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("state")
    (root / "web").mkdir()
    (root / "code").mkdir()

    def ids(first: int, rows: int) -> pa.Table:
        return pa.table({"id": np.arange(first, first + rows, dtype=np.int64)})

    pq.write_table(ids(0, 300), root / "web" / "a.parquet", row_group_size=40)
    pq.write_table(ids(300, 123), root / "web" / "b.parquet", row_group_size=50)
    pq.write_table(ids(10000, 200), root / "code" / "c.parquet", row_group_size=30)
    return root


def _ds(path: Path, v1: bool = True, **kw) -> ShardDataset:
    ds = ShardDataset(str(path), **{"batch_size": 8, "shuffle": True, "seed": 4, **kw})
    ds.shuffle_window_rows = 32
    if v1:  # the order a version-1 run read (and goes on reading after a resume)
        ds.lane_cuts = "nearest"
    return ds


def _mix(data: Path, v1: bool = True) -> object:
    web, code = _ds(data / "web", v1), _ds(data / "code", v1)
    return ShardDataset.mix({"web": web, "code": code}, [2, 1])


# lane starts of the fixture "web" (units 7x40, 20, 50, 50, 23) as dataprep 1 cut them
V1_LANE_STARTS = {(0, True): [0, 112, 192, 320, 416], (2, True): [0, 88, 224, 320, 416]}
V1_LANE_STARTS[0, False] = V1_LANE_STARTS[2, False] = [0, 120, 200, 304, 416]


def test_version_1_lane_cuts_are_those_version_1_made(data: Path) -> None:
    for (epoch, shuffle), starts in V1_LANE_STARTS.items():
        ds = _ds(data / "web", shuffle=shuffle)
        assert ds.plan(epoch).lane_start.tolist() == starts
    # the current rule starts a lane at most a batch into a row group: epoch 2 moved 88 -> 96
    assert _ds(data / "web", v1=False).plan(2).lane_start.tolist() == [0, 96, 224, 320, 416]


def test_a_fresh_run_writes_version_2_and_resumes_from_it(data: Path) -> None:
    whole = _ds(data / "web", v1=False)
    whole.set_epoch(2)
    full = _ids(whole)
    ds = _ds(data / "web", v1=False)
    ds.set_epoch(2)
    it = iter(ds)
    head = _ids(next(it) for _ in range(7))
    state = ds.state_dict()
    assert state == dict(V1_PLAIN, version=2, lane_cuts="up")
    fresh = _ds(data / "web", v1=False)
    fresh.lane_cuts = "nearest"  # the state, not the instance, decides the order continued
    fresh.load_state_dict(json.loads(json.dumps(state)))
    assert fresh.lane_cuts == "up"
    assert head + _ids(fresh) == full
    assert sorted(sum(full, [])) == list(range(423))  # every row once
    mix = _mix(data, v1=False)
    assert make_dataloader(mix).state_dict()["version"] == 2
    for bad, match in [(dict(state, version=3), "version 3"), (dict(state, lane_cuts="x"), "x")]:
        with pytest.raises(DataprepError, match=match):
            _ds(data / "web").load_state_dict(bad)


def _ids(batches) -> list[list[int]]:
    return [b["id"].tolist() for b in batches]


def test_v1_state_of_plain_iteration_loads_and_continues(data: Path) -> None:
    whole = _ds(data / "web")
    whole.set_epoch(2)
    full = _ids(whole)
    ds = _ds(data / "web")
    ds.set_epoch(2)
    it = iter(ds)
    head = _ids(next(it) for _ in range(7))
    assert ds.state_dict() == V1_PLAIN  # the format written is unchanged
    fresh = _ds(data / "web", v1=False)
    fresh.load_state_dict(json.loads(json.dumps(V1_PLAIN)))  # as read back from a checkpoint
    assert fresh.lane_cuts == "nearest"
    assert fresh.next_pass() == ReadPosition(2, 7, 0)
    assert head + _ids(fresh) == full
    assert fresh.next_pass() == ReadPosition(2, 0, 0)  # the resume point was used up


def test_v1_state_of_a_dataloader_loads_with_workers(data: Path) -> None:
    full = _ids(_ds(data / "web", rank=1, world_size=2))
    dl = make_dataloader(_ds(data / "web", rank=1, world_size=2))
    it = iter(dl)
    head = _ids(next(it) for _ in range(5))
    assert dl.position() == ReadPosition(0, 0, 5)
    epoch, start, done = dl.position()  # the earlier tuple form still unpacks and compares
    assert (epoch, start, done) == dl.position() == (0, 0, 5)
    assert dl.state_dict() == V1_RANK1
    # the old tuple / list form of a position, and the typed one, give the same state
    earlier = dict(V1_RANK1, next_batch=6)
    assert dl.state_dict((0, 0, 3)) == dl.state_dict([0, 0, 3]) == earlier
    assert dl.state_dict(ReadPosition(0, 0, 3)) == earlier
    resumed = make_dataloader(_ds(data / "web", False, rank=1, world_size=2), num_workers=2)
    resumed.load_state_dict(V1_RANK1)
    assert resumed.position() == ReadPosition(0, 10, 0)
    tail = _ids(resumed)
    assert head + tail == full
    assert resumed.position() == ReadPosition(0, 10, len(tail))


def test_v1_state_of_a_mix_loads_and_continues(data: Path) -> None:
    full = _ids(make_dataloader(_mix(data)))
    dl = make_dataloader(_mix(data))
    it = iter(dl)
    head = _ids(next(it) for _ in range(9))
    assert dl.state_dict() == V1_MIX
    resumed = make_dataloader(_mix(data, v1=False), num_workers=1)
    resumed.load_state_dict(V1_MIX)
    assert head + _ids(resumed) == full
    plain = _mix(data, v1=False)  # without a DataLoader, the mix keeps its own position
    plain.load_state_dict(V1_MIX)
    it = iter(plain)
    assert _ids(next(it) for _ in range(2)) == full[9:11]
    assert plain.state_dict() == dict(V1_MIX, next_batch=11)


def test_read_position_round_trips_and_refuses_garbage() -> None:
    pos = ReadPosition(3, 40, 7)
    assert ReadPosition.from_state(pos.to_state()) == pos
    assert ReadPosition.from_state([3, 40, 7]) == ReadPosition.from_state((3, 40, 7)) == pos
    assert json.loads(json.dumps(pos.to_state())) == [3, 40, 7]
    assert pos.advanced(2) == ReadPosition(3, 40, 9)
    for bad in ([1, 2], [1, 2, "x"], [1, -2, 0], "012", None):
        with pytest.raises(DataprepError, match="position"):
            ReadPosition.from_state(bad)  # type: ignore[arg-type]


def test_shard_dataset_documents_every_parameter() -> None:
    import inspect

    doc = ShardDataset.__doc__ or ""
    for name in inspect.signature(ShardDataset.__init__).parameters:
        if name != "self":
            assert f"`{name}`" in doc, name


def test_no_import_cycle_inside_the_loader() -> None:
    """Every `dataprep.loader.*` import, also inside functions, forms no cycle."""
    import ast

    import dataprep.loader

    folder = Path(dataprep.loader.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                head, _, rest = name.partition("dataprep.loader.")
                if not head and rest and rest.split(".")[0] != path.stem:
                    deps.add(rest.split(".")[0])
    graph.pop("__init__", None)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert graph["mix"] and graph["dataset"]  # the parser saw their imports
    assert [m for m in graph if reaches(m, m, set())] == []
