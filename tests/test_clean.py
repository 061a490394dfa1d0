"""clean: each step against an independent oracle.

Oracles: mojibake made here by encoding UTF-8 and decoding cp1252 (the fix must give back the
original); `unicodedata.normalize`; groff's own rendering of real man pages (the words clean
keeps must be groff's words, and most of groff's words must be kept); counts planted by hand
for repeated lines; Python's `html` module for entities.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import unicodedata
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import cli, column, encrypted_copy, killed_run, manifest, partition_pairs

from dataprep import dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.quality import clean
from dataprep.runner import run_stage
from dataprep.stages.clean import CleanConfig, clean_text

INLINE = make_executor("local", workers=1)
MAN1 = sorted(Path("/usr/share/man/man1").glob("*.1.gz"))


def _clean(texts: list[str | None], **options: object) -> tuple[list, dict, dict]:
    arr = pa.array(texts, pa.string())
    groups = clean.group_column(pa.table({"t": arr}), None)
    out, counts, extra = clean_text(arr, CleanConfig(**options), groups, 3)
    return out.to_pylist(), counts, extra


def _dataset(tmp: Path, rows: list[dict], name: str = "ds", **shard: object) -> Path:
    raw = tmp / f"{name}-raw"
    raw.mkdir()
    (raw / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp / name
    run_stage("shard", {"shard_rows": 100, **shard}, out, inputs=[str(raw)], executor=INLINE)
    return out


def test_mojibake_is_repaired_and_good_text_untouched() -> None:
    good = ["Café “quoted” — naïve façade", "Grüße aus Köln", "日本語のテキスト", "plain ascii"]
    import ftfy.bad_codecs  # noqa: F401 - registers the codec that breaks text as browsers did

    broken = [g.encode("utf-8").decode("sloppy-windows-1252") for g in good[:2]]
    assert broken[0] != good[0]
    out, counts, extra = _clean(broken + good, collapse_whitespace=False)
    assert out == good[:2] + good
    assert counts["fix_unicode.docs"] == 2 and counts["fix_unicode.chars"] > 0
    assert extra["examples"]["fix_unicode"][0][1].startswith("Café")


def test_normal_forms() -> None:
    texts = ["e\u0301te\u0301", "ﬁne ①", "Ａ"]
    nfc, _, _ = _clean(texts)
    nfkc, _, _ = _clean(texts, normalize="NFKC")
    assert nfc == [unicodedata.normalize("NFC", t) for t in texts]
    assert nfkc == [unicodedata.normalize("NFKC", t) for t in texts]
    assert _clean(texts, normalize="none")[0] == texts


def test_controls_go_but_newlines_and_tabs_stay() -> None:
    out, counts, _ = _clean(["a\x00b\x07c\r\nd\re\tf\x1b[0m\x85g"], collapse_whitespace=False)
    assert out == ["abc\nd\ne\tf[0m\ng"]  # NEL is a line break
    assert counts["strip_control.docs"] == 1


def test_invisible_format_characters_go_as_ftfy_removes_them() -> None:
    """A byte-order mark opening a document (files saved on Windows) and the other characters
    ftfy's own `remove_control_chars` drops (oracle: ftfy.chardata.CONTROL_CHARS) go; the
    meaningful format characters (zero-width joiner, bidi marks, soft hyphen) stay."""
    import ftfy.chardata

    texts = ["\ufeffHello", "a\ufeffb\u206ac\ufffcd\ufff9e", "zwj \u200d bidi \u200f shy \u00ad"]
    out, counts, _ = _clean(texts, collapse_whitespace=False)
    assert out == [t.translate(ftfy.chardata.CONTROL_CHARS) for t in texts]
    assert out[:2] == ["Hello", "abcde"] and out[2] == texts[2]
    assert counts["strip_control.docs"] == 2


def test_whitespace() -> None:
    text = "  Title  \n\n\n\nword   word\t\n    indented  code\n\n\n"
    out, _, _ = _clean([text])
    assert out == ["Title\n\nword word\n    indented code"]


def test_html_remnants_and_entities() -> None:
    html_doc = "<div class='x'>\n<p>Fish &amp; chips&nbsp;&#8212; <b>now</b></p>\n</div>\nbye"
    usage = "usage: ctest -S <script> [-- <options>]\nMaintainer: Ann <ann@example.org>"
    out, counts, _ = _clean([html_doc, usage])
    assert out[0] == "Fish & chips\u00a0\u2014 now\nbye"
    assert out[1] == usage  # not HTML: angle-bracket arguments and addresses stay
    assert counts["html.docs"] == 1


@pytest.mark.parametrize("path", MAN1[:400:10], ids=lambda p: p.name)
def test_man_pages_match_groffs_words(path: Path) -> None:
    """What clean keeps of a man page is its text: every word is one groff prints, and the
    words of groff's page body (header and footer lines aside) are kept."""
    source = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    out, counts, _ = _clean([source])
    assert counts["roff.docs"] == 1
    assert not re.search(r"(?m)^\.(?:TH|SH|PP|TP|IP|B|I|BR|nf|fi)\b|\\f[BIRP]", out[0])
    render = subprocess.run(
        ["groff", "-man", "-Tutf8", "-rLL=500n", "-rHY=0", "-P-c", "-P-b", "-P-u", "-P-o"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = [line for line in render.splitlines() if line.strip()][1:-1]
    groff = set(re.findall(r"[A-Za-z]{3,}", "\n".join(body)))
    ours = set(re.findall(r"[A-Za-z]{3,}", out[0]))
    assert len(ours & groff) >= 0.97 * len(ours)
    assert len(ours & groff) >= 0.93 * len(groff), sorted(groff - ours)[:20]


def test_prose_starting_with_a_dot_is_not_roff() -> None:
    text = "Intro\n.NET is a framework\n'Tis the season"
    assert _clean([text])[0] == [text]


def test_repeated_lines_per_source(tmp_path: Path) -> None:
    footer = "Visit our website for more great articles!"
    rows = []
    for i in range(20):
        rows.append({"source": "web", "text": f"Article {i} says thing number {i}.\n{footer}"})
    for i in range(4):  # too few documents of this source for the line to count as repeated
        rows.append({"source": "news", "text": f"Story {i} is new.\n{footer}"})
    for _ in range(12):  # exact duplicates count once
        rows.append({"source": "dup", "text": f"Same text.\n{footer}"})
    src = _dataset(tmp_path, rows)
    out = tmp_path / "out"
    config = {"source_column": "source", "repeated_lines": True, "repeated_min_docs": 10}
    run = run_stage("clean", config, out, input_path=src, executor=INLINE)
    by_source: dict[str, list[str]] = {}
    for source, text in zip(column(out, "source"), column(out, "text"), strict=True):
        by_source.setdefault(source, []).append(text)
    assert all(footer not in t for t in by_source["web"])
    assert all(footer in t for t in by_source["news"] + by_source["dup"])
    assert run.report["steps"]["repeated_lines"]["documents"] == 20
    removed = run.report["steps"]["repeated_lines"]["chars_removed"]
    assert removed == 20 * (len(footer) + 1)  # the line and its newline


def test_drop_lines_by_a_users_own_pattern(tmp_path: Path) -> None:
    """Boilerplate no built-in rule knows (cookie banners, share buttons): lines matching the
    user's RE2 pattern in full go with their newline; oracle: Python's re, line by line."""
    pattern = r"(?i)(?:we use cookies.*|share (?:on|via)\s+\w+|\s*\[?advert(?:isement)?\]?\s*)"
    texts = [
        "Title\nWe use cookies to improve your experience.\nBody text, not a banner.\nShare on X",
        "Advertisement\nA line that says we use cookies inside it stays.\n [ADVERT] ",
        "nothing to drop here",
        "share via\nmail stays: a pattern's \\s never reaches into the next line",
    ]
    want = [
        "\n".join(x for x in t.split("\n") if not re.fullmatch(pattern, x)).strip() for t in texts
    ]
    src = _dataset(tmp_path, [{"text": t} for t in texts])
    run = run_stage("clean", {"drop_lines": pattern}, tmp_path / "o", input_path=src)
    assert column(tmp_path / "o", "text") == want
    assert run.report["steps"]["drop_lines"]["documents"] == 2
    bad = cli("clean", src, "-o", tmp_path / "bad", "--drop-lines", "(?<=x)y", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "drop_lines" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_report_and_empty_documents(tmp_path: Path) -> None:
    rows = [{"text": "good  text"}, {"text": "<br>\n<p></p>"}, {"text": ".TH X 1\n.SH NAME"}]
    src = _dataset(tmp_path, rows)
    out = tmp_path / "out"
    run = run_stage("clean", {}, out, input_path=src, executor=INLINE)
    assert column(out, "text") == ["good text", "NAME"]
    assert run.report["dropped_empty"] == 1 and run.report["rows_out"] == 2
    steps = run.report["steps"]
    assert steps["collapse_whitespace"]["documents"] >= 1
    assert steps["collapse_whitespace"]["examples"][0]["after"] == "good text"
    keep = run_stage("clean", {"drop_empty": False}, tmp_path / "keep", input_path=src)
    assert keep.report["rows_out"] == 3


def test_missing_or_non_text_column_is_one_sentence(tmp_path: Path) -> None:
    src = _dataset(tmp_path, [{"text": "x", "n": 1}])
    with pytest.raises(DataprepError, match="--text-column 'body' is not a column") as err:
        run_stage("clean", {"text_column": "body"}, tmp_path / "o", input_path=src)
    assert "\n" not in str(err.value)
    with pytest.raises(DataprepError, match="--source-column 'src' is not a column"):
        run_stage("clean", {"source_column": "src"}, tmp_path / "o", input_path=src)
    with pytest.raises(DataprepError, match="holds int64, not text"):
        run_stage("clean", {"text_column": "n"}, tmp_path / "o", input_path=src)


def test_encrypted_input_no_examples_in_report(tmp_path: Path) -> None:
    rows = [{"text": f"secret  note {i}\x00"} for i in range(30)]
    src = _dataset(tmp_path, rows)
    enc, keys = encrypted_copy(src, tmp_path)
    out = tmp_path / "out"
    run = run_stage("clean", {}, out, input_path=enc, executor=INLINE, key_file=str(keys))
    assert manifest(out)["encryption"] is not None
    assert all(s["examples"] == [] for s in run.report["steps"].values())
    assert b"secret note" not in (out / dataset.REPORT).read_bytes()
    reader = ReadOptions(str(keys), dataset.read_manifest(out).encryption)
    got = pa.concat_tables(
        reader.read_table(out / s.path) for s in dataset.read_manifest(out).shards
    )
    assert got.column("text").to_pylist() == [f"secret note {i}" for i in range(30)]


def test_s3_in_and_out(s3_bucket: str, tmp_path: Path) -> None:
    src = _dataset(tmp_path, [{"text": f"Caf\u00c3\u00a9  {i}"} for i in range(50)])
    remote_in = f"{s3_bucket}/in"
    run_stage("compress", {}, remote_in, input_path=src, executor=INLINE)
    run_stage("clean", {}, f"{s3_bucket}/out", input_path=remote_in, executor=INLINE)
    got = dataset.read_rows(f"{s3_bucket}/out").column("text").to_pylist()
    assert got == [f"Café {i}" for i in range(50)]


def test_resume_after_sigkill_is_identical(tmp_path: Path) -> None:
    pages = [gzip.decompress(p.read_bytes()).decode("utf-8", "replace") for p in MAN1[:300]]
    src = _dataset(tmp_path, [{"text": t} for t in pages], shard_rows=4)
    config = {"repeated_lines": True}
    reference = tmp_path / "reference"
    run_stage("clean", config, reference, input_path=src, executor=INLINE)
    out = tmp_path / "out"
    finished = killed_run("clean", config, src, out)
    assert 5 <= finished < 75 and not (out / dataset.MANIFEST).exists()
    assert run_stage("clean", config, out, input_path=src, executor=INLINE).status == "ran"
    ours, theirs = manifest(out), manifest(reference)
    assert [s["xxh3_128"] for s in ours["shards"]] == [s["xxh3_128"] for s in theirs["shards"]]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_large_strings_and_nulls_through_every_step(kind: pa.DataType) -> None:
    texts = ["a  b\nfooter line here\n", None, "Caf\u00c3\u00a9\nfooter line here", ""] * 6
    arr = pa.array(texts, kind)
    groups = clean.group_column(pa.table({"t": arr}), None)
    config = CleanConfig(repeated_lines=True, repeated_min_docs=2)
    out, counts, _ = clean_text(arr, config, groups, 1)
    assert out.type == kind
    assert out.to_pylist()[:4] == ["a b", None, "Café", ""]
    assert counts["repeated_lines.docs"] == 12


def test_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated `dataprep clean` command: flags from the config model, one-line errors."""
    monkeypatch.setenv("COLUMNS", "200")  # --help is not cut to a narrow terminal
    src = _dataset(tmp_path, [{"text": "ﬁne  <b>x</b>&amp;y</p>"}])
    out = tmp_path / "out"
    cli("clean", src, "-o", out, "--normalize", "NFKC", "--no-html", "-q")
    assert column(out, "text") == ["fine <b>x</b>&amp;y</p>"]
    assert "--repeated-lines" in cli("clean", "--help").stdout
    bad = cli("clean", src, "-o", tmp_path / "bad", "--source-column", "src", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'src'" in bad.stderr


def test_a_partitioned_dataset_keeps_its_partitions(tmp_path: Path) -> None:
    """`clean` after `partition` keeps each shard's partition tag and its pNNNNN- file name
    (both were dropped: untagged part-NNNNN shards, so the report's rows per partition and a
    glob of one partition were lost); every row stays in its own partition's shard."""
    rows = [{"id": f"d{i}", "text": f"caf\u00c3\u00a9  number {i}\n\n\n"} for i in range(30)]
    src = _dataset(tmp_path, rows, shard_rows=10)
    part = tmp_path / "part"
    run_stage("partition", {"key": "id", "partitions": 3}, part, input_path=src, executor=INLINE)
    run_stage("clean", {}, tmp_path / "c", input_path=part, executor=INLINE)
    for ids, got in partition_pairs(part, tmp_path / "c"):
        assert got.column("id").to_pylist() == ids
        assert all(t.startswith("caf\u00e9 number ") for t in got.column("text").to_pylist())
