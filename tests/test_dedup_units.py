"""Dedup building blocks against independent oracles: datasketch, brute force, plain Python."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash
from helpers import cli

from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages.dedup import buckets, clusters, lsh, minhash
from dataprep.stages.dedup.normalise import fingerprints, normalise

WORDS = [f"w{i}" for i in range(3000)] + ["naïve", "ﬁne", "日本語", "Straße", "ÉCOLE"]


def _docs(rng: np.random.Generator, n: int) -> list[str]:
    docs = []
    for _ in range(n):
        length = int(rng.integers(0, 400))
        docs.append(" ".join(rng.choice(WORDS, length)))
    return docs + ["", "one", "two words", "a b c d", "x  y\tz\nq r s", "日本語のテキスト です"]


def _oracle_shingles(text: str, n: int) -> list[bytes]:
    """Independent shingling: whitespace words, n at a time, short docs as one shingle."""
    words = text.split()
    if not words:
        return []
    grams = [words[i : i + n] for i in range(max(1, len(words) - n + 1))]
    return [" ".join(g).encode("utf-8") for g in grams]


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


@pytest.mark.parametrize(("num_perm", "seed", "n"), [(128, 1, 5), (64, 7, 3)])
def test_datasketch_mode_equals_datasketch(num_perm: int, seed: int, n: int) -> None:
    docs = _docs(np.random.default_rng(seed), 300)
    sig, counts = minhash.datasketch_signatures(pa.array(docs), num_perm, seed, n, None)
    for i, doc in enumerate(docs):
        ref = MinHash(num_perm=num_perm, seed=seed)
        shingles = _oracle_shingles(doc, n)
        ref.update_batch(shingles)
        assert counts[i] == len(shingles)
        assert np.array_equal(ref.hashvalues, sig[i]), f"doc {i} differs"


def test_datasketch_mode_char_ngrams_equal() -> None:
    docs = ["日本語のテキストです", "ab", "", "def f(x): return x + 1"]
    sig, _ = minhash.datasketch_signatures(pa.array(docs), 32, 3, 5, 3)
    for i, doc in enumerate(docs):
        ref = MinHash(num_perm=32, seed=3)
        grams = [doc[j : j + 3] for j in range(len(doc) - 2)] if len(doc) >= 3 else [doc]
        ref.update_batch([g.encode() for g in grams if g])
        assert np.array_equal(ref.hashvalues, sig[i])


def _pairs(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    left, right = [], []
    for i in range(count):
        words = list(rng.choice(WORDS[:3000], int(rng.integers(60, 400))))
        edited = list(words)
        share = rng.uniform(0.0, 0.12)
        for j in rng.choice(len(edited), int(len(edited) * share) + 1, replace=False):
            edited[j] = f"edit{i}x{j}"
        left.append(" ".join(words))
        right.append(" ".join(edited))
    return left, right


def test_fast_mode_estimates_agree_with_datasketch() -> None:
    """Same accuracy as classic MinHash: both within MinHash error of the true Jaccard."""
    left, right = _pairs(np.random.default_rng(11), 300)
    num_perm = 128
    fa, _ = minhash.fast_signatures(pa.array(left), num_perm, 1, 5, None)
    fb, _ = minhash.fast_signatures(pa.array(right), num_perm, 1, 5, None)
    ours = minhash.estimate(fa, fb)
    theirs = []
    true = []
    for a, b in zip(left, right, strict=True):
        ma, mb = MinHash(num_perm=num_perm), MinHash(num_perm=num_perm)
        sa, sb = _oracle_shingles(a, 5), _oracle_shingles(b, 5)
        ma.update_batch(sa)
        mb.update_batch(sb)
        theirs.append(ma.jaccard(mb))
        true.append(_jaccard(set(sa), set(sb)))
    theirs_a, true_a = np.array(theirs), np.array(true)
    sigma = np.sqrt(np.maximum(true_a * (1 - true_a), 0.01) / num_perm)
    # Every estimate within 4 sigma of the truth, and of datasketch's within 2x its spread.
    assert np.all(np.abs(ours - true_a) <= 4 * sigma + 1e-9)
    assert np.all(np.abs(ours - theirs_a) <= 5 * sigma * np.sqrt(2))
    ours_err, theirs_err = np.abs(ours - true_a).mean(), np.abs(theirs_a - true_a).mean()
    assert abs(ours.mean() - true_a.mean()) < 0.01  # unbiased
    assert ours_err <= 1.25 * theirs_err


def test_fast_mode_handles_short_and_empty_docs() -> None:
    docs = ["", "one", "one", "two words", "two words here now please ok"]
    sig, counts = minhash.fast_signatures(pa.array(docs), 64, 1, 5, None)
    assert counts.tolist() == [0, 1, 1, 1, 2]
    assert np.all(sig[0] == minhash.SENTINEL)
    assert np.array_equal(sig[1], sig[2])
    assert minhash.estimate(sig[1], sig[3]) < 0.2


def test_char_tokens_are_code_points() -> None:
    offsets, tokens = minhash.char_tokens(pa.array(["日本", "abc", ""]))
    assert offsets.tolist() == [0, 2, 5, 5]
    assert len(np.unique(tokens)) == 5


def test_hash_strings_distinct_and_consistent() -> None:
    words = pa.array(["a", "b", "ab", "ba", "", "naïve", "a" * 100, "a" * 101])
    hashes = minhash.hash_strings(words)
    assert len(set(hashes.tolist())) == len(words)
    again = minhash.hash_strings(pa.array(["zzz", "ab", "naïve"]).slice(1))
    assert again.tolist() == [hashes[2], hashes[5]]


def test_choose_bands_is_optimal_by_brute_force() -> None:
    for num_perm, threshold, recall in [(128, 0.8, 0.95), (64, 0.7, 0.9), (256, 0.9, 0.99)]:
        bands, rows = lsh.choose_bands(num_perm, threshold, recall)
        assert bands * rows <= num_perm
        assert lsh.catch_probability(threshold, bands, rows) >= recall
        best = lsh.false_area(threshold, bands, rows)
        for b, r in itertools.product(range(1, num_perm + 1), repeat=2):
            if b * r <= num_perm and lsh.catch_probability(threshold, b, r) >= recall:
                assert lsh.false_area(threshold, b, r) >= best - 1e-12


def test_s_curve_matches_simulation() -> None:
    """P(candidate) = 1-(1-J^r)^b, checked by simulating independent slot matches."""
    rng = np.random.default_rng(0)
    bands, rows = 13, 7
    for j in (0.6, 0.8, 0.9):
        match = rng.random((20000, bands * rows)) < j
        caught = match.reshape(-1, bands, rows).all(axis=2).any(axis=1).mean()
        assert abs(caught - lsh.catch_probability(j, bands, rows)) < 0.015


def test_union_find_matches_python_oracle() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    a = rng.integers(0, n, 2500)
    b = rng.integers(0, n, 2500)
    uf = clusters.UnionFind(n)
    for chunk in range(0, 2500, 700):
        uf.union(a[chunk : chunk + 700], b[chunk : chunk + 700])
    roots = uf.roots()
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    groups: dict[int, list[int]] = {}
    for x in range(n):
        groups.setdefault(find(x), []).append(x)
    for members in groups.values():
        assert set(roots[members].tolist()) == {min(members)}


def test_union_of_edge_endpoints_equals_union1d() -> None:
    """Oracle: np.union1d, batch by batch (empty, repeated and already-seen ids included)."""
    rng = np.random.default_rng(6)
    ids = want = np.zeros(0, dtype=np.int64)
    for size in (0, 1, 500, 0, 3000, 40):
        batch = rng.integers(0, 2000, (2, size)).ravel()
        ids = clusters._union_sorted(ids, batch)
        want = np.union1d(want, batch)
        assert np.array_equal(ids, want) and ids.dtype == np.int64


def test_keepers_policies() -> None:
    roots = np.array([0, 0, 0, 3, 4, 4, 6])
    score = np.array([5.0, 1.0, 1.0, 0.0, np.nan, 2.0, 9.0])
    assert clusters.keepers(roots, 7, None).tolist() == [1, 0, 0, 1, 1, 0, 1]
    # smaller score wins; ties -> smallest id; NaN ranks last
    assert clusters.keepers(roots, 7, score).tolist() == [0, 1, 0, 1, 0, 1, 1]
    # ids >= rows are rows of an old index: their clusters keep no new row
    with_old = np.array([0, 0, 2, 3, 0])
    assert clusters.keepers(with_old, 4, None).tolist() == [0, 0, 1, 1]


def test_members_only_clustering_equals_the_whole_corpus_one() -> None:
    """Union-find over just the edges' endpoints gives every row the keep flag and cluster
    root that union-find over all rows (the oracle: one parent entry per row) gives."""
    rng = np.random.default_rng(11)
    total, old = 5000, 300  # rows of this run, then rows of a saved index
    batches = [
        np.stack([rng.integers(0, total + old, 400), rng.integers(0, total, 400)]) for _ in range(4)
    ]
    score = rng.random(total)
    score[rng.integers(0, total, 50)] = np.nan
    for by_score in (False, True):
        uf = clusters.UnionFind(total + old)
        for edges in batches:
            uf.union(edges[0], edges[1])
        roots = uf.roots()
        keep = clusters.keepers(roots, total, score if by_score else None)
        sizes = np.bincount(roots, minlength=len(roots))
        expected_cluster = np.where(sizes[roots[:total]] > 1, roots[:total], -1)

        members = clusters.cluster_members(
            lambda: iter(batches), total, (lambda ids: score[ids]) if by_score else None
        )
        got_keep = np.ones(total, dtype=bool)
        got_cluster = np.full(total, -1)
        new = members.ids[: members.new]
        got_keep[new] = members.keep
        got_cluster[new] = members.ids[members.roots[: members.new]]
        assert np.array_equal(got_keep, keep)
        assert np.array_equal(got_cluster, expected_cluster)
        assert len(members.ids) < total  # the point: far fewer entries than rows


def test_merge_by_ranges_finds_every_equal_key() -> None:
    rng = np.random.default_rng(9)
    runs, truth = [], {}
    offset = 0
    for _ in range(6):
        n = int(rng.integers(500, 1500))
        keys = rng.integers(0, 4000, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        order = np.argsort(keys, kind="stable")
        runs.append(buckets.Run(keys[order], order.astype(np.uint32), offset))
        for row, key in enumerate(keys.tolist()):
            truth.setdefault(key, []).append(offset + row)
        offset += n
    pairs = set()
    chunks = 0
    for keys, ids in buckets.merged_ranges(runs, 1000):
        chunks += 1
        a, b, _ = buckets.group_edges(keys, ids)
        pairs.update(zip(a.tolist(), b.tolist(), strict=True))
    assert chunks > 1
    expected = {(min(m), x) for m in truth.values() for x in m if x != min(m)}
    assert pairs == expected


@pytest.mark.parametrize("old_index_last", [False, True])
def test_merged_ranges_order_equals_a_two_key_sort(old_index_last: bool) -> None:
    """Oracle: np.lexsort((ids, keys)) over all pairs. With `old_index_last` the last run's
    ids are smaller than the others' (a saved index after the new rows), so equal keys come
    out of a key-only stable sort with ids descending: the two-key sort must decide."""
    rng = np.random.default_rng(4)
    runs, offset = [], 1000 if old_index_last else 0
    for _ in range(4):
        n = int(rng.integers(300, 900))
        keys = rng.integers(0, 200, n).astype(np.uint64)
        order = np.argsort(keys, kind="stable")
        runs.append(buckets.Run(keys[order], order.astype(np.uint32), offset))
        offset += n
    if old_index_last:
        keys = np.sort(rng.integers(0, 200, 500).astype(np.uint64))
        runs.append(buckets.Run(keys, np.arange(500, dtype=np.uint32), 0))
    all_keys = np.concatenate([r.keys for r in runs])
    all_ids = np.concatenate([r.ids.astype(np.int64) + r.offset for r in runs])
    order = np.lexsort((all_ids, all_keys))
    got = list(buckets.merged_ranges(runs, 10**6))
    assert len(got) == 1
    assert np.array_equal(got[0][0], all_keys[order])
    assert np.array_equal(got[0][1], all_ids[order])


def test_signature_store_similar_equals_the_mean_rule(tmp_path) -> None:
    """Oracle: the fraction of equal slots (mean) >= floor, from the signatures in memory;
    pairs across two shard files and a saved index."""
    from dataprep.arrays import save_array

    rng = np.random.default_rng(5)
    sigs = [rng.integers(0, 4, (n, 32), dtype=np.uint32) for n in (40, 25)]
    saved = rng.integers(0, 4, (10, 32), dtype=np.uint32)
    for i, sig in enumerate(sigs):
        (tmp_path / "scratch" / f"s{i:05d}").mkdir(parents=True)
        save_array(buckets.shard_dir(tmp_path, i) / "sig.npy", sig)
    every = np.concatenate([*sigs, saved])
    a, b = rng.integers(0, 75, 500), rng.integers(0, 75, 500)
    for offsets, extra in (([0, 40], None), ([0, 40, 65], saved)):
        ids = (a % offsets[-1], b % offsets[-1]) if extra is None else (a, b)
        store = buckets.SignatureStore(tmp_path, offsets, extra)
        for floor in (0.25, 0.3, 0.5):
            want = (every[ids[0]] == every[ids[1]]).mean(axis=1) >= floor
            assert np.array_equal(store.similar(ids[0], ids[1], floor, chunk=64), want)


def test_exact_fingerprints_follow_normalisation() -> None:
    text = pa.array(["Hello,  World", "hello world", "HELLO, WORLD", None, "ﬁne", "fine"])
    steps = ["nfkc", "lowercase", "whitespace", "punctuation"]
    fp = fingerprints([text], steps)
    assert (fp[0] == fp[1]).all() and (fp[1] == fp[2]).all()
    assert (fp[4] == fp[5]).all()
    raw = fingerprints([text], [])
    assert not (raw[0] == raw[1]).all()
    assert normalise(pa.array([" a \t b "]), ["whitespace"]).to_pylist() == ["a b"]
    # columns are separated: ("a", "b c") != ("a b", "c")
    two = fingerprints([pa.array(["a", "a b"]), pa.array(["b c", "c"])], ["whitespace"])
    assert not (two[0] == two[1]).all()


def test_ascii_fast_path_matches_split_and_unicode_path() -> None:
    """Token hashes must not depend on which path a batch takes (ASCII-only or not)."""
    rng = np.random.default_rng(1)
    spaces = [" ", "  ", "\t", "\n", " \r\n", "\x0b", "\x0c"]
    docs = []
    for _ in range(800):
        parts = [str(rng.choice(spaces))] if rng.random() < 0.3 else []
        for _ in range(int(rng.integers(0, 30))):
            parts += [str(rng.choice(WORDS[:50] + ["hello,", "end."])), str(rng.choice(spaces))]
        if parts and rng.random() < 0.5:
            parts.pop()
        docs.append("".join(parts))
    docs += ["", " ", "a", " a", "a ", "  \n "]
    for arr in (pa.array(docs), pa.array(docs).slice(7, 500)):
        offsets, hashes = minhash.word_tokens(arr)
        words = [d.split() for d in arr.to_pylist()]
        assert offsets.tolist() == np.cumsum([0] + [len(w) for w in words]).tolist()
        flat = pa.array([w for ws in words for w in ws], pa.string())
        assert np.array_equal(hashes, minhash.hash_strings(flat))
        # the same documents in a batch with one non-ASCII document take the Unicode path
        _, mixed = minhash.word_tokens(pa.concat_arrays([arr, pa.array(["naïve café"])]))
        assert np.array_equal(mixed[: len(hashes)], hashes)


def test_verified_edges_check_each_pair_once_with_the_same_result() -> None:
    """Oracle: every copy of every candidate pair checked on its own (what each band task
    did): the calls return the passing pairs, each once (all union-find needs), `rejected`
    counts every failing copy, yet each distinct pair is checked once however many bands
    repeat it; the clusters are those of the edges checked copy by copy."""
    rng = np.random.default_rng(12)
    size = 900  # rows of this run and of a saved index: the id space of the pairs
    similar = rng.random((size, size)) < 0.7
    pool = np.stack([rng.integers(0, size, 700), rng.integers(0, size, 700)])
    batches = [
        pool[:, rng.choice(700, int(rng.integers(0, 400)), replace=False)] for _ in range(13)
    ]
    checked: list[int] = []

    def check(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        checked.extend(zip(a.tolist(), b.tolist(), strict=True))
        return similar[a, b]

    def pairs(edges: np.ndarray) -> list[tuple[int, int]]:
        return list(zip(edges[0].tolist(), edges[1].tolist(), strict=True))

    copies = np.concatenate(batches, axis=1)
    passing = copies[:, similar[copies[0], copies[1]]]
    for size_of_space, one_code in ((size, True), (2**33, False)):
        verified = clusters.VerifiedEdges(check, size_of_space)
        checked.clear()
        got = [verified(edges) for edges in batches]
        assert verified.rejected == int((~similar[copies[0], copies[1]]).sum()) > 0
        returned = [p for edges in got for p in pairs(edges)]
        if one_code:  # one code per pair: each pair checked and returned once
            assert sorted(checked) == sorted(set(pairs(copies)))
            assert sorted(returned) == sorted(set(pairs(passing)))
        else:  # too many ids for one code: every copy checked and returned
            assert sorted(returned) == sorted(pairs(passing))
        want = clusters.cluster_members(lambda: iter(batches_passing(batches, similar)), 600, None)
        have = clusters.cluster_members(lambda got=got: iter(got), 600, None)
        for field in ("ids", "roots", "keep"):
            assert np.array_equal(getattr(have, field), getattr(want, field)), field


def batches_passing(batches: list[np.ndarray], similar: np.ndarray) -> list[np.ndarray]:
    return [edges[:, similar[edges[0], edges[1]]] for edges in batches]


def test_exact_columns_that_are_lists_or_structs_are_refused_in_one_sentence() -> None:
    """A nested --columns column cannot be hashed as a text cell: one sentence naming it,
    before any task runs; flat columns of other kinds pass the check."""
    import pyarrow as pa

    from dataprep.errors import DataprepError
    from dataprep.stages.dedup.config import DedupConfig, check_schema

    schema = pa.schema(
        {
            "text": pa.string(),
            "n": pa.int64(),
            "tags": pa.list_(pa.string()),
            "meta": pa.struct({"k": pa.int64()}),
        }
    )
    check_schema(DedupConfig.parse({"method": "exact", "columns": ["text", "n"]}), schema)
    for name in ("tags", "meta"):
        config = DedupConfig.parse({"method": "exact", "columns": ["text", name]})
        with pytest.raises(DataprepError, match=f"--columns {name} holds .*not lists or structs"):
            check_schema(config, schema)
    check_schema(DedupConfig.parse({"method": "minhash", "columns": ["tags"]}), schema)


def test_against_a_plain_file_or_a_missing_path_is_one_sentence(tmp_path: Path) -> None:
    """`--against` takes the directory `dedup --index-out` wrote: a plain file (a Parquet
    shard, the index.json itself) or a path that does not exist is one sentence saying so
    (exit 2), not a storage error (exit 1)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [{"id": str(i), "text": f"document number {i} " * 5} for i in range(4)]
    (raw / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = tmp_path / "ds"
    run_stage("shard", {}, src, inputs=[str(raw)], executor=make_executor("local", workers=1))
    plain = tmp_path / "index.json"
    plain.write_text("{}")
    for path, what in [(plain, "is a file"), (tmp_path / "nope", "does not exist")]:
        proc = cli("dedup", src, "-o", tmp_path / "out", "--against", path, check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"--against {path} {what}" in lines[0] and "--index-out" in lines[0], lines[0]
        assert not (tmp_path / "out").exists()
