"""filter: safe expressions, presets against a rule-by-rule reference, --mark-only, report.

Oracles: the brute-force signal reference of test_score (plain Python per document) with
the Gopher thresholds applied in datatrove's order; Python's own evaluation of the same
comparisons on rows read back with pyarrow.
"""

from __future__ import annotations

import decimal
import json
import operator
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import cli, column, encrypted_copy, killed_run, partition_pairs
from test_score import INLINE, _dataset, real_texts, reference

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.quality import expr, presets
from dataprep.runner import run_stage

SCHEMA = pa.schema(
    [("word_count", pa.int64()), ("alpha_fraction", pa.float64()), ("language", pa.string())]
    + [("ok", pa.bool_())]
)


def _gopher_reason(text: str, overrides: dict | None = None) -> str | None:
    """The first Gopher rule `text` fails (datatrove's order: repetition, then quality)."""
    signals = reference(text)
    for rule in presets.rules("gopher", overrides or {}, "rules"):
        value = signals[rule.column]
        ok = value >= rule.threshold if rule.op == ">=" else value <= rule.threshold
        if not ok:
            return rule.name
    return None


def test_expressions_translate_and_evaluate() -> None:
    table = pa.table(
        {
            "word_count": [10, 60, 80, None],
            "alpha_fraction": [0.9, 0.5, 0.95, 0.9],
            "language": ["en", "en", "de", "en"],
            "ok": [True, True, False, True],
        }
    )
    cases = {
        "word_count >= 50 and alpha_fraction > 0.8": [False, False, True, False],
        "word_count >= 50 or language == 'en'": [True, True, True, True],
        "not (language in ['de', 'fr'])": [True, True, False, True],
        "language not in ('de',) and ok": [True, True, False, True],
        "10 <= word_count < 70": [True, True, False, False],
        "word_count * 2 - 20 > 100": [False, False, True, False],
        "word_count / 4 >= 15": [False, True, True, False],
        "word_count is None": [False, False, False, True],
        "ok == true": [True, True, False, True],
    }
    for text, want in cases.items():
        where = expr.parse(text, SCHEMA, "--where")
        assert expr.evaluate(table, [where.expression])[0].tolist() == want, text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wordcount >= 50", "'wordcount', which is not a column of the input"),
        ("word_cuont >= 50", "(did you mean 'word_count'?)"),
        ("word_count >= 'fifty'", "'word_count' is numeric but \"'fifty'\" is string"),
        ("language > 3", "'language' is string but '3' is numeric"),
        ("word_count", "is a numeric value, not a condition"),
        ("__import__('os').system('true')", "is not allowed"),
        ("word_count.real > 1", "is not allowed"),
        ("[x for x in ok]", "is not allowed"),
        ("lambda: 1", "is not allowed"),
        ("word_count >= ", "is not a valid expression"),
        ("ok and word_count", "'word_count' is numeric, where a bool is needed"),
        ("language in ['en', 3]", "the list holds 3"),
        ("class is None", "a column named 'class' is written col('class')"),
        ("lambda == 1", "a column named 'lambda' is written col('lambda')"),
    ],
)
def test_bad_expressions_are_one_sentence(text: str, message: str) -> None:
    with pytest.raises(DataprepError) as err:
        expr.parse(text, SCHEMA, "--where")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "not " * 5000 + "word_count > 1",  # the parser's own recursion limit
        "not " * 900 + "word_count > 1",  # parses, but nests past the translator's stack
        "+".join(["word_count"] * 1500) + " > 1",
        "-" * 5000 + "word_count > 1",
    ],
    ids=["not-5000", "not-900", "sum-1500", "minus-5000"],
)
def test_deeply_nested_expressions_are_one_sentence(text: str) -> None:
    """A machine-written or hostile --where nests too deep for Python's recursion: one
    sentence (exit 2 on the command line), never a RecursionError traceback."""
    with pytest.raises(DataprepError, match="nests too deep") as err:
        expr.parse(text, SCHEMA, "--where")
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_deeply_nested_where_on_the_command_line_exits_2(tmp_path: Path) -> None:
    src = _dataset(tmp_path, real_texts(3))
    where = "not " * 5000 + "word_count > 1"
    proc = cli("filter", src, "-o", tmp_path / "o", "--where", where, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "nests too deep" in proc.stderr and not (tmp_path / "o").exists()


def test_columns_whose_names_are_not_identifiers_via_col() -> None:
    """CSV headers and JSON keys are not always Python names (`word-count`, `Word Count`, a
    label column called `class`): `col('...')` names any column; nothing else is callable."""
    table = pa.table({"word-count": [1, 5, 9], "class": ["a", "b", "a"], "Word Count": [0, 1, 2]})
    where = expr.parse(
        "col('word-count') >= 5 or col('class') == 'a' and col(\"Word Count\") < 1",
        table.schema,
        "--where",
    )
    assert expr.evaluate(table, [where.expression])[0].tolist() == [True, True, True]
    assert where.columns == ("word-count", "class", "Word Count")
    for bad, message in [
        ("col('nope') > 1", "'nope', which is not a column"),
        ("col(1) > 1", "col() takes one column name in quotes"),
        ("col('class', 'x') == 'a'", "col() takes one column name in quotes"),
        ("len('class') > 1", "is not allowed"),
    ]:
        with pytest.raises(DataprepError, match=re.escape(message)):
            expr.parse(bad, table.schema, "--where")


def test_gopher_preset_matches_the_reference_rule_by_rule(tmp_path: Path) -> None:
    texts = real_texts(150) + ["too short", "word " * 80, "the and of " * 30]
    src = _dataset(tmp_path, texts, shard_rows=40)
    out = tmp_path / "marked"
    run = run_stage(
        "filter", {"preset": "gopher", "mark_only": True}, out, input_path=src, executor=INLINE
    )
    want = [_gopher_reason(t) for t in texts]
    assert column(out, "filter_reason") == want
    assert column(out, "text") == texts
    kept = sum(w is None for w in want)
    assert 0 < kept < len(texts)
    report = run.report
    assert report["rows_kept"] == kept and report["rows_out"] == len(texts)
    assert sum(report["dropped_by_rule"].values()) == len(texts) - kept
    assert sorted(report["signals_computed"]) == sorted(presets.columns("gopher"))  # raw input
    # per source: ids alternate between two sources in _dataset
    by_source = report["dropped_by_source"]
    assert sum(s["dropped"] for s in by_source.values()) == len(texts) - kept
    assert sum(s["rows"] for s in by_source.values()) == len(texts)
    for rule, ids in report["examples"].items():
        assert ids and all(want[int(i[1:])] == rule for i in ids)


def test_score_then_filter_drops_the_same_rows_without_recomputing(tmp_path: Path) -> None:
    texts = real_texts(80)
    src = _dataset(tmp_path, texts)
    run_stage("score", {"signals": ["gopher"]}, tmp_path / "sc", input_path=src, executor=INLINE)
    run = run_stage(
        "filter", {"preset": "gopher"}, tmp_path / "f", input_path=tmp_path / "sc", executor=INLINE
    )
    assert run.report["signals_computed"] == []
    assert column(tmp_path / "f", "text") == [t for t in texts if _gopher_reason(t) is None]


def test_rules_are_overridden_one_by_one(tmp_path: Path) -> None:
    texts = real_texts(60) + ["alpha beta gamma " * 12]  # 36 words: < 50, >= 30
    src = _dataset(tmp_path, texts)
    overrides = {"min_words": 30, "max_top_2_gram_char_fraction": None}
    config = {"preset": "gopher", "rules": overrides, "mark_only": True}
    run_stage("filter", config, tmp_path / "o", input_path=src, executor=INLINE)
    assert column(tmp_path / "o", "filter_reason") == [_gopher_reason(t, overrides) for t in texts]
    with pytest.raises(DataprepError, match="'min_word' is not a rule of preset 'gopher'"):
        run_stage(
            "filter", {"preset": "gopher", "rules": {"min_word": 3}}, tmp_path / "x", input_path=src
        )


def test_where_with_a_missing_column_stops_before_any_task(tmp_path: Path) -> None:
    src = _dataset(tmp_path, real_texts(5))
    with pytest.raises(DataprepError, match="'qualty', which is not a column") as err:
        run_stage("filter", {"where": "qualty > 1"}, tmp_path / "o", input_path=src)
    assert "\n" not in str(err.value) and not (tmp_path / "o").exists()
    proc = cli("filter", src, "-o", tmp_path / "o", "--where", "qualty > 1", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "qualty" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_where_and_rules_and_languages(tmp_path: Path) -> None:
    texts = real_texts(40)
    src = _dataset(tmp_path, texts)
    cli(
        "filter", src, "-o", tmp_path / "w", "--where", "word_count >= 400 and alpha_fraction > 0.5"
    )
    signals = [reference(t) for t in texts]
    want = [
        t
        for t, s in zip(texts, signals, strict=True)
        if s["word_count"] >= 400 and s["alpha_fraction"] > 0.5
    ]
    assert want and column(tmp_path / "w", "text") == want
    cli("filter", src, "-o", tmp_path / "r", "--preset", "gopher", "--rules", "min_words=30")
    report = json.loads((tmp_path / "r" / ".report.json").read_text())
    assert {"name": "min_words", "keep_if": "word_count >= 30"} in report["rules"]
    # --languages computes the language itself: the same rows as score's column says
    run_stage("score", {"signals": ["language"]}, tmp_path / "s", input_path=src, executor=INLINE)
    detected = column(tmp_path / "s", "language")
    cli("filter", src, "-o", tmp_path / "l", "--languages", "en-GB")
    want = [t for t, lang in zip(texts, detected, strict=True) if lang == "en"]
    assert want and column(tmp_path / "l", "text") == want
    proc = cli("filter", src, "-o", tmp_path / "x", "--languages", "english", check=False)
    assert proc.returncode == 2 and "'english' is not a language the model knows" in proc.stderr


def test_recipe_score_then_filter(tmp_path: Path) -> None:
    texts = real_texts(30)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"version: 1\nname: q\nvars: {{root: {tmp_path / 'work'}}}\n"
        f"input: {{path: {raw}, text_column: text}}\n"
        "executor: {kind: local, workers: 1}\n"
        "stages:\n"
        "  - {id: shards, op: shard, params: {shard_rows: 10}}\n"
        "  - {id: scored, op: score, params: {signals: [gopher, language]}}\n"
        "  - {id: kept, op: filter, params: {preset: gopher, rules: {min_words: 100},"
        " where: \"language == 'en'\"}}\n"
    )
    cli("run", recipe, "-q")
    overrides = {"min_words": 100}
    languages = column(tmp_path / "work" / "scored", "language")
    want = [
        t
        for t, lang in zip(texts, languages, strict=True)
        if _gopher_reason(t, overrides) is None and lang == "en"
    ]
    assert want and column(tmp_path / "work" / "kept", "text") == want
    bad = recipe.read_text().replace("language == 'en'", "lang == 'en'")
    recipe.write_text(bad)
    proc = cli("validate", recipe, check=False)
    assert proc.returncode == 2 and "'lang', which is not a column" in proc.stderr


def test_encrypted_input_report_quotes_no_values(tmp_path: Path) -> None:
    from dataprep import dataset
    from dataprep.dataset import ReadOptions

    texts = real_texts(30)
    src = _dataset(tmp_path, texts)
    enc, keys = encrypted_copy(src, tmp_path)
    out = tmp_path / "out"
    run = run_stage("filter", {"preset": "gopher"}, out, input_path=enc, key_file=str(keys))
    meta = dataset.read_manifest(out)
    assert meta.encryption is not None
    reader = ReadOptions(str(keys), meta.encryption)
    got = pa.concat_tables(reader.read_table(out / s.path) for s in meta.shards)
    assert got.column("text").to_pylist() == [t for t in texts if _gopher_reason(t) is None]
    assert run.report["dropped_by_source"] == {}
    examples = [i for ids in run.report["examples"].values() for i in ids]
    assert examples and all(i.startswith("part-") and "#" in i for i in examples)
    report = (out / dataset.REPORT).read_bytes()
    assert not any(f'"d{i}"'.encode() in report for i in range(len(texts)))


def test_s3_in_and_out(s3_bucket: str, tmp_path: Path) -> None:
    from dataprep import dataset

    texts = real_texts(20)
    src = _dataset(tmp_path, texts)
    run_stage("compress", {}, f"{s3_bucket}/fin", input_path=src, executor=INLINE)
    run_stage("filter", {"preset": "gopher"}, f"{s3_bucket}/fout", input_path=f"{s3_bucket}/fin")
    got = dataset.read_rows(f"{s3_bucket}/fout").column("text").to_pylist()
    assert got == [t for t in texts if _gopher_reason(t) is None]


def test_resume_after_sigkill_gives_the_same_shards_and_report(tmp_path: Path) -> None:
    from helpers import manifest

    from dataprep import dataset

    src = _dataset(tmp_path, real_texts(300), shard_rows=3)
    config = {"preset": "gopher"}
    whole = run_stage("filter", config, tmp_path / "whole", input_path=src, executor=INLINE)
    out = tmp_path / "out"
    finished = killed_run("filter", config, src, out)
    assert 5 <= finished < 100 and not (out / dataset.MANIFEST).exists()
    resumed = run_stage("filter", config, out, input_path=src, executor=INLINE)
    ours, theirs = manifest(out), manifest(tmp_path / "whole")
    assert [s["xxh3_128"] for s in ours["shards"]] == [s["xxh3_128"] for s in theirs["shards"]]
    for key in ("rows_kept", "dropped_by_rule", "failing_by_rule", "dropped_by_source", "examples"):
        assert resumed.report[key] == whole.report[key], key


def test_fineweb_own_rules_keep_what_datatrove_fineweb_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preset's four FineWeb rules (every other rule off) keep exactly the documents
    datatrove's FineWebQualityFilter keeps (its word splitter set to whitespace words, the
    words filter computes). Its duplicated-line-characters ratio counts non-blank `\\n` lines
    over the characters that are not `\\n`: repeated lines of blanks (scraped pages) are not
    duplicates there, and the 0.01 threshold is FineWeb's only on FineWeb's quantity."""
    fineweb = pytest.importorskip("datatrove.pipeline.filters.fineweb_quality_filter")
    from datatrove.data import Document

    monkeypatch.setattr(fineweb, "split_into_words", lambda text, language=None: text.split())
    prose = "This sentence ends here and it is long enough to count as a line.\n"
    texts = real_texts(120) + [
        prose * 2 + "\n    \n".join(f"Paragraph {i} says a new true thing." for i in range(9)),
        "".join(f"Line {i} is a fresh line of prose, ending well.\n\t\t\n" for i in range(30)),
        prose + "\n".join("word " * 8 for _ in range(3)),
    ]
    src = _dataset(tmp_path, texts)
    own = {rule.name for rule in presets.FINEWEB_OWN}
    off = {rule.name: None for rule in presets.PRESETS["fineweb"] if rule.name not in own}
    config = {"preset": "fineweb", "rules": off, "mark_only": True}
    run_stage("filter", config, tmp_path / "o", input_path=src, executor=INLINE)
    ours = [reason is None for reason in column(tmp_path / "o", "filter_reason")]
    theirs = []
    for i, text in enumerate(texts):
        kept = fineweb.FineWebQualityFilter().filter(Document(text=text, id=str(i)))
        theirs.append(kept if isinstance(kept, bool) else kept[0])
    assert ours == theirs
    assert 0 < sum(theirs) < len(texts)


@pytest.mark.parametrize("option", ["--source-column", "--id-column"])
def test_a_mistyped_report_column_is_one_sentence(tmp_path: Path, option: str) -> None:
    """A report column the user names (drops per source, example ids) must exist: a typo
    was silently ignored (no per-source counts, examples by position). The defaults
    (`source`, `id`) may be absent."""
    src = _dataset(tmp_path, real_texts(4))
    proc = cli("filter", src, "-o", tmp_path / "o", "--preset", "c4", option, "sourc", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{option} 'sourc' is not a column of the input" in proc.stderr
    assert not (tmp_path / "o").exists()
    field = option[2:].replace("-", "_")
    with pytest.raises(DataprepError, match=f"{option} 'sourc' is not a column"):
        run_stage("filter", {"preset": "c4", field: "sourc"}, tmp_path / "o2", input_path=src)
    bare = tmp_path / "bare"
    run_stage("filter", {"preset": "c4"}, bare, input_path=src, executor=INLINE)  # no error


@pytest.mark.parametrize("preset", ["c4", "fineweb"])
def test_c4_page_rules_keep_what_datatrove_c4_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preset: str
) -> None:
    """C4's lorem-ipsum and curly-bracket rules look at the lines C4 keeps (its code: tfds
    c4_utils, datatrove's C4QualityFilter): a `{` in a code line C4 removes first does not drop
    the page. FineWeb runs the same filter without the punctuation rule. Every other rule off,
    the sentence rule too (datatrove splits sentences with spaCy)."""
    c4 = pytest.importorskip("datatrove.pipeline.filters.c4_filters")
    from datatrove.data import Document

    monkeypatch.setattr(c4, "split_into_sentences", lambda text, language=None: [text])
    prose = "This line ends well and has words.\n"
    texts = real_texts(120) + [
        prose + "int main() {\n}\n" + prose,  # short code lines: C4 drops them, keeps the page
        prose + "see the {braces} in this sentence.\n",  # a kept line: the page goes
        prose + "Lorem ipsum dolor sit amet\n",  # no final punctuation: C4 drops only the line
        prose + "Lorem ipsum dolor sit amet.\n",
        prose + "Enable javascript to see { the } menu.\n",  # C4 drops the line before `{`
        prose + "javascript: lorem ipsum is here.\n",  # ... but after lorem ipsum
    ]
    src = _dataset(tmp_path, texts)
    page = {"no_lorem_ipsum", "no_curly_bracket"}
    off = {r.name: None for r in presets.PRESETS[preset] if r.name not in page}
    config = {"preset": preset, "rules": off, "mark_only": True}
    run_stage("filter", config, tmp_path / "o", input_path=src, executor=INLINE)
    ours = [reason is None for reason in column(tmp_path / "o", "filter_reason")]
    step = c4.C4QualityFilter(filter_no_terminal_punct=preset == "c4", min_num_sentences=-1)
    theirs = []
    for i, text in enumerate(texts):
        kept = step.filter(Document(text=text, id=str(i)))
        theirs.append(kept if isinstance(kept, bool) else kept[0])
    assert ours == theirs
    assert 0 < sum(theirs) < len(texts)


def test_the_smallest_int64_literal_compares() -> None:
    """`-9223372036854775808` is an int64: the minus belongs to the literal (H7's note)."""
    table = pa.table({"word_count": [0, -5, 2**62]})
    where = expr.parse("word_count > -9223372036854775808", table.schema, "--where")
    assert expr.evaluate(table, [where.expression])[0].tolist() == [True, True, True]
    with pytest.raises(DataprepError, match="past the 64-bit range"):
        expr.parse("word_count > -9223372036854775809", table.schema, "--where")


def test_where_steps_equal_the_same_expression_through_acero() -> None:
    """filter runs a --where as compute calls on the columns (no Acero, no pandas): every
    kind of rule gives what pyarrow's own Acero gives for `where.expression` (the oracle),
    with nulls, several chunks, constants and an empty table."""
    part = {
        "word_count": [10, 60, 80, None, -3, 2**40],
        "alpha_fraction": [0.9, 0.5, float("nan"), 0.9, None, 0.0],
        "language": ["en", None, "de", "en", "fr", "en"],
        "ok": [True, None, False, True, False, True],
    }
    table = pa.concat_tables([pa.table(part, schema=SCHEMA)] * 2)
    assert table.column("word_count").num_chunks == 2
    cases = [
        "word_count >= 50 and alpha_fraction > 0.8",
        "word_count >= 50 or language == 'en'",
        "not (language in ['de', 'fr'])",
        "language not in ('de',) and ok",
        "10 <= word_count < 70 <= alpha_fraction * 100",
        "word_count * 2 - 20 > 100",
        "word_count / 4 >= 15 and -word_count < 0",
        "word_count is None or alpha_fraction is not None",
        "ok == true or ok != false",
        "word_count in [10, 80.0, 3]",
        "word_count in [60, 2.5]",
        "ok in [True]",
        "word_count in []",
        "word_count not in []",
        "true",
        "1 < 2 and false",
        "word_count > -9223372036854775808",
        "alpha_fraction < 1e26",
    ]
    for text in cases:
        where = expr.parse(text, SCHEMA, "--where")
        for rows in (table, table.slice(0, 0), table.slice(3, 5)):
            (ours,) = expr.evaluate(rows, [where])
            (acero,) = expr.evaluate(rows, [where.expression])
            assert ours.dtype == bool and ours.tolist() == acero.tolist(), text


def test_filter_tasks_do_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (~0.2 s of CPU per process) for pa.array/pa.scalar of Python or
    numpy values, to_numpy and Acero (pyarrow.dataset); a filter task needs none of it. A
    fresh process runs filter (preset, --where, --mark-only) on a scored dataset inline."""
    texts = real_texts(40)
    src = _dataset(tmp_path, texts, shard_rows=15)
    run_stage("score", {"signals": ["gopher"]}, tmp_path / "sc", input_path=src, executor=INLINE)
    code = (
        "import sys, json\n"
        "from dataprep.executors import make_executor\n"
        "from dataprep.runner import run_stage\n"
        "inline = make_executor('local', workers=1)\n"
        "configs = json.loads(sys.argv[2])\n"
        "for name, config in configs.items():\n"
        "    run_stage('filter', config, sys.argv[1] + '/' + name,\n"
        "              input_path=sys.argv[1] + '/sc', executor=inline)\n"
        "print('pandas' in sys.modules)\n"
    )
    configs = {
        "gopher": {"preset": "gopher"},
        "where": {"where": "word_count > 300 and alpha_fraction > 0.75"},
        "mark": {"preset": "gopher", "mark_only": True},
    }
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    args = [sys.executable, "-c", code, str(tmp_path), json.dumps(configs)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"], done.stdout
    reasons = [_gopher_reason(t) for t in texts]
    assert None in reasons and set(reasons) != {None}
    assert column(tmp_path / "gopher", "text") == [
        t for t, r in zip(texts, reasons, strict=True) if r is None
    ]
    assert column(tmp_path / "mark", "filter_reason") == reasons
    signals = [reference(t) for t in texts]
    want = [
        t
        for t, s in zip(texts, signals, strict=True)
        if s["word_count"] > 300 and s["alpha_fraction"] > 0.75
    ]
    assert 0 < len(want) < len(texts) and column(tmp_path / "where", "text") == want


_NUMERIC_TYPES = [pa.int64(), pa.int32(), pa.uint64(), pa.int8(), pa.float64(), pa.float32()]
_NUMERIC_TYPES += [pa.float16(), pa.decimal128(22, 2)]


def _numbers(type_: pa.DataType, rng: random.Random, n: int) -> list:
    """Column values of `type_` (None among them) near the edges where doubles lose integers
    (2**53) and near small numbers, as Python values exactly as Arrow holds them."""
    near = [0, 1, 3, -3, 2**53, 2**53 + 1, -(2**53) - 1, 2**62 + 1, 2**63 - 1, -(2**63), 2**64 - 1]
    out: list = []
    for _ in range(n):
        pick = rng.random()
        if pick < 0.1:
            out.append(None)
        elif pick < 0.6:
            out.append(rng.choice(near) + rng.randint(-2, 2))
        elif pick < 0.8:
            out.append(rng.randint(-50, 50) / 2)
        else:
            out.append(rng.randint(-(2**60), 2**60))
    if pa.types.is_integer(type_):
        info = np.iinfo(type_.to_pandas_dtype())
        out = [v if v is None or v != int(v) else int(v) for v in out]
        out = [v for v in out if v is None or (isinstance(v, int) and info.min <= v <= info.max)]
    elif pa.types.is_decimal(type_):  # ints and halves, all under 10**20: exact
        out = [None if v is None else decimal.Decimal(v) for v in out]
    else:
        dtype = type_.to_pandas_dtype()
        with np.errstate(over="ignore"):
            out = [None if v is None else float(dtype(v)) for v in out]
    return out


def _literals(rng: random.Random, n: int) -> list[int | float]:
    """Mixed int and float literals an expert would write, incl. past 2**53 and negative."""
    base = [0, 3, -3, 2**53, 2**53 + 1, -(2**53) - 1, 2**62 + 1, 2**63 - 1, -(2**63), 16777217]
    out: list[int | float] = []
    for _ in range(n):
        v = rng.choice(base) + rng.randint(-1, 1)
        v = max(-(2**63), min(2**63 - 1, v))
        kind = rng.random()
        out.append(v if kind < 0.5 else float(v) if kind < 0.8 else v + 0.5)
    return out


@pytest.mark.parametrize("type_", _NUMERIC_TYPES, ids=str)
def test_numeric_lists_and_comparisons_are_exact(type_: pa.DataType) -> None:
    """`n in [...]` / `not in` with ints, floats (mixed, negative, past 2**53) and None, and
    `n OP literal` either way round, give what Python gives on the same values (null rows:
    `None in list` for lists, not kept for comparisons)."""
    rng = random.Random(str(type_))
    values = _numbers(type_, rng, 400)
    table = pa.table({"n": pa.array(values, type_)})
    assert table.column("n").to_pylist() == values
    schema = table.schema
    for _ in range(40):
        listed = _literals(rng, rng.randint(1, 4)) + rng.choice([[], [], [None]])
        rng.shuffle(listed)
        text = f"n in [{', '.join(map(repr, listed))}]"
        got = expr.evaluate(table, [expr.parse(text, schema, "--where")])[0].tolist()
        assert got == [v in listed for v in values], text
        text = text.replace(" in ", " not in ")
        got = expr.evaluate(table, [expr.parse(text, schema, "--where")])[0].tolist()
        assert got == [v not in listed for v in values], text
    ops = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
    for literal in _literals(rng, 40) + [float("inf"), -float("inf"), 1e300]:
        for op, name in ops.items():
            test = getattr(operator, name)
            for text, oracle in (
                (f"n {op} {literal!r}", lambda v, t=test, x=literal: t(v, x)),
                (f"{literal!r} {op} n", lambda v, t=test, x=literal: t(x, v)),
            ):
                text = text.replace("inf", "1e999")
                where = expr.parse(text, schema, "--where")
                got = expr.evaluate(table, [where])[0].tolist()
                assert got == [v is not None and oracle(v) for v in values], text


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("x in [-3]", [True, False, False, False]),
        ("x in [-3, -1.5, 2]", [True, True, True, False]),
        ("x not in [-3, +2]", [False, True, False, True]),
        ("x in []", [False, False, False, False]),
        ("x not in []", [True, True, True, True]),
        ("x in [None]", [False, False, False, True]),
        ("x not in [None, -1.5]", [True, False, True, False]),
        ("name in ['a', None]", [True, False, False, True]),
        ("ok in [True, None]", [True, False, False, True]),
        ("x * 2 in [-6, -3.0]", [True, True, False, False]),
        ("-x in [3]", [True, False, False, False]),
        ("9007199254740993 == 9007199254740992.0", [False] * 4),
        ("-1.5 < x", [False, False, True, False]),
    ],
)
def test_lists_with_negative_literals_none_and_empty(text: str, want: list[bool]) -> None:
    table = pa.table(
        {
            "x": pa.array([-3, -1.5, 2, None], pa.float64()),
            "name": ["a", "b", "c", None],
            "ok": [True, False, False, None],
        }
    )
    where = expr.parse(text, table.schema, "--where")
    assert expr.evaluate(table, [where])[0].tolist() == want
    assert expr.evaluate(table, [where.expression])[0].tolist() == want  # Acero agrees


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x in ['a', 3]", "the list holds 'a'"),
        ("name in ['a', 3]", "the list holds 3"),
        ("ok in [1]", "the list holds 1"),
        ("x in [True]", "the list holds True"),
        ("x in [y]", "'y' in a list must be a literal"),
        ("x in [-y]", "'-y' in a list must be a literal"),
        ("x in [-'a']", "in a list must be a literal"),
        ("x in [9223372036854775808]", "past the 64-bit range"),
        ("None in [None]", "None is written in x is None or in a list"),
        ("x == None", "None is written in x is None or in a list"),
    ],
)
def test_lists_mixing_kinds_are_one_sentence(text: str, message: str) -> None:
    schema = pa.schema([("x", pa.int64()), ("name", pa.string()), ("ok", pa.bool_())])
    with pytest.raises(DataprepError) as err:
        expr.parse(text, schema, "--where")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_where_in_list_from_the_command_line(tmp_path: Path) -> None:
    """The two reported cases, as a user runs them: a negative literal in a list, and an
    integer past 2**53 beside a float (was an ArrowInvalid traceback)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [{"text": "t", "x": x, "n": n} for x, n in [(-3, 2**53 + 1), (4, 2**53), (0, 1)]]
    (raw / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("shard", raw, "-o", tmp_path / "ds")
    cli("filter", tmp_path / "ds", "-o", tmp_path / "neg", "--where", "x in [-3]")
    assert column(tmp_path / "neg", "x") == [-3]
    where = "n in [9007199254740993, 1.5]"
    cli("filter", tmp_path / "ds", "-o", tmp_path / "big", "--where", where)
    assert column(tmp_path / "big", "n") == [2**53 + 1]


def test_score_and_filter_keep_partitions(tmp_path: Path) -> None:
    """After `partition`, `score` and `filter` keep each shard's partition tag and pNNNNN-
    name (they wrote untagged part-NNNNN shards): every kept row is still in the shard of
    its own partition, as the hash put it there."""
    src = _dataset(tmp_path, real_texts(30), shard_rows=10)
    part = tmp_path / "part"
    cli("partition", src, "-o", part, "--key", "id", "--partitions", "3")
    cli("score", part, "-o", tmp_path / "sc", "--signals", "gopher")
    cli("filter", tmp_path / "sc", "-o", tmp_path / "f", "--where", "word_count > 100")
    for out in (tmp_path / "sc", tmp_path / "f"):
        for ids, got in partition_pairs(part, out):
            assert set(got.column("id").to_pylist()) <= set(ids)
    assert 0 < dataset.read_manifest(tmp_path / "f").rows < 30


def test_preset_or_languages_do_not_read_a_user_column_as_the_signal(tmp_path: Path) -> None:
    """A raw input with its own `language` labels (not the detector's): `filter --languages
    en` kept no row, silently, reading them as the signal; now one sentence naming the
    column and the ways out, in a recipe before anything runs too. --where reads the column
    as it is; after `score --replace-columns` the signal is score's and --languages works."""
    raw = tmp_path / "raw"
    raw.mkdir()
    texts = real_texts(12)
    rows = [{"id": f"d{i}", "text": t, "language": "mine"} for i, t in enumerate(texts)]
    (raw / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("shard", raw, "-o", tmp_path / "ds")
    for args in (["--languages", "en"], ["--preset", "fineweb", "--languages", "en"]):
        proc = cli("filter", tmp_path / "ds", "-o", tmp_path / "f", *args, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert "'language'" in line and "--languages" in line and "--where" in line, line
        assert not (tmp_path / "f").exists()
    cli("filter", tmp_path / "ds", "-o", tmp_path / "w", "--where", "language in ['mine']")
    assert dataset.read_manifest(tmp_path / "w").rows == 12
    cli("score", tmp_path / "ds", "-o", tmp_path / "sc", "--replace-columns")
    cli("filter", tmp_path / "sc", "-o", tmp_path / "en", "--languages", "en")
    found = column(tmp_path / "sc", "language")
    want = [t for t, lang in zip(texts, found, strict=True) if lang == "en"]
    assert 0 < len(want) and column(tmp_path / "en", "text") == want
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        json.dumps(
            {
                "version": 1,
                "name": "t",
                "input": {"path": str(raw)},
                "vars": {"root": str(tmp_path / "work")},
                "executor": {"kind": "local", "workers": 1},
                "stages": [
                    {"id": "shards", "op": "shard"},
                    {"id": "keep", "op": "filter", "params": {"languages": ["en"]}},
                ],
            }
        )
    )
    proc = cli("run", recipe, check=False)
    assert proc.returncode == 2 and "stages[1]" in proc.stderr and "'language'" in proc.stderr
    assert not (tmp_path / "work" / "shards").exists()


@pytest.mark.parametrize("type_", [pa.int64(), pa.int32(), pa.uint32(), pa.int8()], ids=str)
def test_integer_and_float_columns_compare_exactly(type_: pa.DataType) -> None:
    """`n OP x` for an integer column and a float column, either way round, is Python's exact
    comparison (it was an ArrowInvalid traceback past 2**53); `n * 2.0 OP x` rounds as
    Python's float(n) * 2.0 does."""
    rng = random.Random(f"mixed {type_}")
    ns = _numbers(type_, rng, 300)
    xs = [None if v is None else float(v) for v in _numbers(pa.int64(), rng, 600)][: len(ns)]
    pairs = enumerate(zip(xs, ns, strict=True))
    xs = [x if i % 7 or n is None else float(n) for i, (x, n) in pairs]  # ties: float(n) == x
    xs[:4] = [2.0**63, -(2.0**63), float("nan"), float("inf")]
    table = pa.table({"n": pa.array(ns, type_), "x": pa.array(xs, pa.float64())})
    ops = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
    for op, name in ops.items():
        test = getattr(operator, name)
        for text, oracle in (
            (f"n {op} x", lambda a, b, t=test: t(a, b)),
            (f"x {op} n", lambda a, b, t=test: t(b, a)),
            (f"n * 2.0 {op} x", lambda a, b, t=test: t(float(a) * 2.0, b)),
        ):
            where = expr.parse(text, table.schema, "--where")
            got = expr.evaluate(table, [where])[0].tolist()
            want = [
                a is not None and b is not None and oracle(a, b)
                for a, b in zip(ns, xs, strict=True)
            ]
            assert got == want, text
            assert expr.evaluate(table, [where.expression])[0].tolist() == want, text


def test_integer_overflow_is_one_sentence_not_a_wrapped_value(tmp_path: Path) -> None:
    """`n * 4 > 0` on 2**62 wrapped to 0 and dropped the row silently; now it stops with one
    sentence naming the expression (as `filter` and `head` print it)."""
    table = pa.table({"n": pa.array([2**62, 3, -(2**63)], pa.int64())})
    for text in ("n * 4 > 0", "n + n > 0", "-n > 0", "n - 1 < 0"):
        where = expr.parse(text, table.schema, "--where")
        with pytest.raises(DataprepError, match="overflows") as err:
            expr.evaluate(table, [where])
        assert text in str(err.value) and "\n" not in str(err.value)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(
        "".join(json.dumps({"text": "t", "n": n}) + "\n" for n in [2**62, 3])
    )
    cli("shard", raw, "-o", tmp_path / "ds")
    for args in (["filter", tmp_path / "ds", "-o", tmp_path / "f"], ["head", tmp_path / "ds"]):
        proc = cli(*args, "--where", "n * 4 > 0", check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "overflows" in proc.stderr


def test_a_dictionary_column_compares_as_its_values() -> None:
    """A Parquet dictionary column (kept by shard) compared with strings: was refused as
    'other'; now read as its values, the oracle being the decoded column."""
    labels = ["x", "y", None, "x"]
    table = pa.table({"lab": pa.array(labels).dictionary_encode()})
    for text, test in (
        ("lab == 'x'", lambda v: v == "x"),
        ("lab in ['y', None]", lambda v: v in ("y", None)),
        ("lab != 'x'", lambda v: v != "x"),
    ):
        where = expr.parse(text, table.schema, "--where")
        want = [(v is not None or "None" in text) and test(v) for v in labels]
        assert expr.evaluate(table, [where])[0].tolist() == want, text
