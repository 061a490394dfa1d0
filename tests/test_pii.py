"""pii: findings per kind against a generated set with known spans, and on real text.

Oracles: the spans the generator planted (benchmarks/pii_data.py: seeded, real licence text,
check digits computed there); an independent strict e-mail pattern over the maintainers'
addresses in /usr/share/doc/*/copyright; python-stdnum / Luhn for what must not be found; the
values themselves, searched for in every file a run writes.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli, column, encrypted_copy, killed_run, manifest, partition_pairs

from benchmarks.pii_data import generate
from dataprep import dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.quality import pii
from dataprep.runner import run_stage
from dataprep.stages.pii import PiiConfig, scan

INLINE = make_executor("local", workers=1)
# Independent of dataprep's e-mail finder (which anchors on `@` and walks back by hand).
STRICT_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Spelled-out addresses with a bracketed or spelled `at` and `dot` (never prose).
SPELLED_EMAIL = re.compile(
    r"[\w.+-]+\s*(?:\(at\)|\[at\]|\sat\s)\s*[\w-]+(?:\s*(?:\(dot\)|\[dot\]|\sdot\s)\s*[\w-]+)+",
    re.IGNORECASE,
)
KEY = "k" * 8 + "0123456789abcdef"


def _dataset(tmp: Path, rows: list[dict], name: str = "ds", **shard: object) -> Path:
    raw = tmp / f"{name}-raw"
    raw.mkdir()
    (raw / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp / name
    run_stage("shard", {"shard_rows": 50, **shard}, out, inputs=[str(raw)], executor=INLINE)
    return out


def _scores(docs: list[tuple[str, list]]) -> dict[str, tuple[float, float]]:
    tp: Counter[str] = Counter()
    found_n: Counter[str] = Counter()
    planted_n: Counter[str] = Counter()
    for text, planted in docs:
        found = {(s.kind, s.start, s.end) for s in pii.find(text)}
        expected = {(p.kind, p.start, p.end) for p in planted}
        for kind, *_ in found & expected:
            tp[kind] += 1
        found_n.update(k for k, *_ in found)
        planted_n.update(k for k, *_ in expected)
    return {k: (tp[k] / max(1, found_n[k]), tp[k] / max(1, planted_n[k])) for k in pii.KINDS}


def test_generated_set_precision_and_recall() -> None:
    docs = generate(500, seed=11)
    assert sum(len(p) for _, p in docs) > 1000
    scores = _scores(docs)
    for kind in ("email", "ip", "credit_card"):
        assert scores[kind][1] >= 0.99, (kind, scores[kind])
    for kind, (precision, recall) in scores.items():
        assert precision >= 0.98 and recall >= 0.95, (kind, precision, recall)


def test_stage_windows_find_what_a_whole_text_scan_finds() -> None:
    """The stage runs short-finding detectors only around RE2 pre-check matches; on generated
    and real text that must give the same findings as scanning every document whole."""
    texts = [t for t, _ in generate(300, seed=4)]
    texts += [
        p.read_text(errors="replace")
        for p in sorted(Path("/usr/share/doc").glob("*/copyright"))[:120]
    ]
    got, counts = scan(pa.array(texts), PiiConfig(mode="all=count"))
    assert got.to_pylist() == texts
    for kind in pii.KINDS:
        expected = [sum(s.kind == kind for s in pii.find(t)) for t in texts]
        assert counts[kind].tolist() == expected, kind


def test_checks_reject_lookalikes() -> None:
    text = (
        "card 4111 1111 1111 1112 (Luhn fails), 1234 5678 9012 3452 (no network), "
        "iban DE89 3704 0044 0532 0130 01, version 1.2.3.4, v10.0.0.1, 2024-01-15, 12:30:45, "
        "DFARS 252.227-7013, std::vector, a::b, api_key = YOUR_API_KEY_HERE_PLEASE"
    )
    # seen in real man pages: versions and sections, a DHCP identifier, /proc tables,
    # date ranges, timings
    text += (
        " Git versions prior to 1.5.1.2; sections of SP800-56Ar3: 5.5.1.1;"
        " id f9:2a:c2:77:29:f9:5c:00;"
        " 1499414498 67879 4 1 4 8416 0 1499414498; 08:02 173521 /usr/bin; sched-entry S 02 300000;"
        " (07/2003-01/2006); 00000000:0801 00000000:0000; aid;   1.098 320 3762 UPDATE;"
        " deployedModelId: '5251549009234886656';"
        " --secret=projects/p-1/secrets/my-s3cret/versions/2"
    )
    assert pii.find(text) == []
    good = "4111 1111 1111 1111 DE89 3704 0044 0532 0130 00 10.0.0.1 fe80::1 +44 20 7946 0958"
    assert [s.kind for s in pii.find(good)] == ["credit_card", "iban", "ip", "ip", "phone"]


SECRETS_IN_THE_WILD = {
    # .env files and CLI configs: the keyword is the tail of a longer upper/snake name
    "OPENAI_API_KEY=": "sk-proj-Abc123Def456Ghi789Jkl012Mno345Pqr678Stu901",
    "aws_secret_access_key = ": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "export GITHUB_TOKEN=": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0",
    'DB_PASSWORD="': "q7Rt9Lm2Xv8Np4Kd",
    # tokens with a provider's prefix, bare in text
    "the Maps key ": "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    "charge with ": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "clone using ": "glpat-Xy7Kq2Lm9Np4Rs8Tv3Wz",
    "publish with ": "npm_abcdefghijABCDEFGHIJ0123456789abcdef",
    "download with ": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "post to ": "https://hooks.slack.com/services/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",
}


def test_secrets_in_env_files_and_provider_tokens() -> None:
    """The common shapes of leaked credentials: `NAME_API_KEY=...` lines (the keyword after
    an underscore: `\\b` does not see it) and tokens whose prefix names their provider."""
    for before, value in SECRETS_IN_THE_WILD.items():
        text = f"{before}{value}\nnext line"
        spans = [(s.kind, text[s.start : s.end]) for s in pii.find(text)]
        assert ("secret", value) in spans, before
        got, counts = scan(pa.array([text]), PiiConfig())
        assert value not in got[0].as_py() and counts["secret"].tolist() == [1], before
    prose = (
        "tokenizer: sentencepiece_model_v2_1234; the secret of the keyboard_shortcut_key: "
        "ctrl+alt+delete_everything_now; sk-learn, hf_hub, AIza, glpat- and npm_ alone; "
        "passwordless login = disabled_by_default_here"
    )
    assert pii.find(prose) == []


def test_non_ascii_addresses_and_french_phone_numbers() -> None:
    """Internationalised e-mail addresses (RFC 6531: letters of any script in the local part,
    IDN domains) and French numbers in pairs (`06 12 34 56 78`) are found whole; the ASCII
    walk-back stopped at `é` and leaked `josé@example.com` entire. Hex dumps stay alone."""
    values = {
        "email": ["josé@example.com", "müller@bücher.de", "info@пример.рф", "a.b@xn--bcher-kva.de"],
        "phone": [
            "06 12 34 56 78",
            "01.23.45.67.89",
            "1-800-555-0199",  # North American, trunk prefix 1
            "089/1234567",  # German area code / number
            "0049 30 1234567",  # 00 instead of +
        ],
    }
    for kind, found in values.items():
        for value in found:
            text = f"Écrivez à {value}, merci."
            spans = [(s.kind, text[s.start : s.end]) for s in pii.find(text)]
            assert spans == [(kind, value)], value
            got, _ = scan(pa.array([text]), PiiConfig())
            assert value not in got[0].as_py(), value
    text = "联系a@example.com谢谢, or ann@example.org。"
    assert [text[s.start : s.end] for s in pii.find(text)] == ["a@example.com", "ann@example.org"]
    dumps = (
        "00 01 02 03 04 05 06 07\n0a 0b 0c 0d\nversion 01.02.03.04.05.06 and 2024.01.02; "
        "/srv/0123/45678/x; (07/2003-01/2006); 1-2-3; 1-2024-01-15; 11-800-555-0199"
    )
    assert pii.find(dumps) == []


def test_spelled_out_addresses() -> None:
    """Copyright files spell addresses out against harvesting; the hash links every spelling."""
    from dataprep.quality.pii_redact import keyed_hash

    found = [
        "lennart (at) poettering (dot) de",
        "r at gmail dot com",
        "solar at openwall.com",
        "makamaka[at]cpan.org",
        "ANN AT EXAMPLE DOT ORG",
    ]
    prose = ["the project at salsa.debian.org", "look at example.com", "meet at noon. Then"]
    text = "; ".join(found + prose)
    spans = pii.find(text)
    assert [text[s.start : s.end] for s in spans] == found
    key = KEY.encode()
    assert keyed_hash(key, "email", "ANN AT EXAMPLE DOT ORG") == keyed_hash(
        key, "email", "ann@example.org"
    )


def test_overlaps_go_to_the_earlier_kind() -> None:
    """Card digits are not also a phone; a private key's lines are one secret."""
    key = "-----BEGIN PRIVATE KEY-----\nAKIAIOSFODNN7EXAMPLE\n-----END PRIVATE KEY-----"
    text = f"pay 5555-5555-5555-4444 now\n{key}"
    assert [s.kind for s in pii.find(text)] == ["credit_card", "secret"]


def _copyright_dataset(tmp: Path, files: int = 150) -> Path:
    docs = sorted(Path("/usr/share/doc").glob("*/copyright"))[:files]
    raw = tmp / "copyright-raw"
    raw.mkdir()
    for path in docs:
        (raw / f"{path.parent.name}.txt").write_bytes(path.read_bytes())
    out = tmp / "copyright"
    run_stage("shard", {"format": "text"}, out, inputs=[str(raw)], executor=INLINE)
    return out


def test_no_email_left_in_real_copyright_files(tmp_path: Path) -> None:
    src = _copyright_dataset(tmp_path)
    before = sum(len(STRICT_EMAIL.findall(t)) for t in column(src, "text"))
    assert before > 200  # maintainers' addresses: the check has something to find
    run = run_stage("pii", {}, tmp_path / "out", input_path=src, executor=INLINE)
    texts = column(tmp_path / "out", "text")
    left = [m for t in texts for m in STRICT_EMAIL.findall(t)]
    assert left == []
    spelled_before = sum(len(SPELLED_EMAIL.findall(t)) for t in column(src, "text"))
    assert spelled_before > 10 and [m for t in texts for m in SPELLED_EMAIL.findall(t)] == []
    assert run.report["findings"]["email"] >= before  # one finding per address replaced


def test_report_and_outputs_never_hold_values_or_key(tmp_path: Path) -> None:
    docs = generate(60, seed=5)
    rows = [{"id": str(i), "text": t, "source": f"s{i % 3}"} for i, (t, _) in enumerate(docs)]
    src = _dataset(tmp_path, rows)
    values = {t[p.start : p.end] for t, planted in docs for p in planted}
    values = {v for v in values if len(v) >= 8}
    os.environ["DATAPREP_PII_KEY"] = KEY
    try:
        config = {"source_column": "source", "mode": "email=hash,phone=count,ip=redact"}
        out = tmp_path / "out"
        run = run_stage("pii", config, out, input_path=src, executor=INLINE)
    finally:
        del os.environ["DATAPREP_PII_KEY"]
    report = (out / dataset.REPORT).read_text()
    assert set(json.loads(report)["by_source"]) == {"s0", "s1", "s2"}
    assert run.report["findings"]["email"] > 20
    for value in values:
        assert value not in report
    side = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    blob = b"".join(p.read_bytes() for p in side) + (out / dataset.MANIFEST).read_bytes()
    assert KEY.encode() not in blob
    texts = "\n".join(column(out, "text"))
    emails = [t[p.start : p.end] for t, planted in docs for p in planted if p.kind == "email"]
    assert not any(e in texts for e in emails) and "<EMAIL:" in texts
    phones = [t[p.start : p.end] for t, planted in docs for p in planted if p.kind == "phone"]
    assert all(p in texts for p in phones)  # count only
    assert "<IP_ADDRESS>" in texts


def test_hash_links_equal_values_and_depends_on_the_key(tmp_path: Path) -> None:
    rows = [
        {"text": "write to Anna.Smith@example.com today"},
        {"text": "or anna.smith@example.com (same person), not bob@example.com"},
    ]
    src = _dataset(tmp_path, rows)
    key_file = tmp_path / "pii.key"
    key_file.write_text(KEY)
    config = {"mode": "all=hash", "hash_key_file": str(key_file)}
    run_stage("pii", config, tmp_path / "a", input_path=src, executor=INLINE)
    tokens = [re.findall(r"<EMAIL:([0-9a-f]{16})>", t) for t in column(tmp_path / "a", "text")]
    assert tokens[0][0] == tokens[1][0] != tokens[1][1]
    key_file.write_text(KEY[::-1])
    again = run_stage("pii", config, tmp_path / "a", input_path=src, executor=INLINE)
    assert again.status == "ran"  # another key: not the cached output
    other = [re.findall(r"<EMAIL:([0-9a-f]{16})>", t) for t in column(tmp_path / "a", "text")]
    assert other[0][0] != tokens[0][0]


def test_bad_config_is_one_sentence(tmp_path: Path) -> None:
    src = _dataset(tmp_path, [{"text": "a@b.org"}])
    with pytest.raises(DataprepError, match="--text-column 'body' is not a column") as err:
        run_stage("pii", {"text_column": "body"}, tmp_path / "o", input_path=src)
    assert "\n" not in str(err.value)
    os.environ.pop("DATAPREP_PII_KEY", None)
    with pytest.raises(DataprepError, match="mode hash needs a key"):
        run_stage("pii", {"mode": "email=hash"}, tmp_path / "o", input_path=src)
    with pytest.raises(DataprepError, match="is not KIND=MODE"):
        run_stage("pii", {"mode": "email"}, tmp_path / "o", input_path=src)
    with pytest.raises(DataprepError, match="unknown kind .phonez."):
        run_stage("pii", {"mode": "phonez=count"}, tmp_path / "o", input_path=src)
    # the report's per-source keys would be the texts themselves, values found included
    with pytest.raises(DataprepError, match="source_column is the text column"):
        config = {"mode": "all=count", "source_column": "text"}
        run_stage("pii", config, tmp_path / "o", input_path=src)


def test_count_columns(tmp_path: Path) -> None:
    rows = [{"text": "a@b.org and c@d.org from 10.0.0.1"}, {"text": "nothing here"}]
    src = _dataset(tmp_path, rows)
    out = tmp_path / "o"
    run_stage("pii", {"count_columns": True, "mode": "all=count"}, out, input_path=src)
    assert column(out, "pii_email") == [2, 0] and column(out, "pii_ip") == [1, 0]
    assert column(out, "text") == [r["text"] for r in rows]
    assert "pii_phone" in dataset.read_manifest(out).schema.names


def test_count_columns_of_an_earlier_pass_are_replaced(tmp_path: Path) -> None:
    """A second pass (count first, then redact) used to append a second `pii_email`: a
    dataset pyarrow cannot read ("duplicate field names"). The new counts replace the old,
    as score's signal columns do."""
    rows = [{"text": "a@b.org and c@d.org from 10.0.0.1"}, {"text": "nothing here"}]
    src = _dataset(tmp_path, rows)
    config = {"count_columns": True, "mode": "all=count"}
    run_stage("pii", config, tmp_path / "counted", input_path=src, executor=INLINE)
    again = {"count_columns": True, "mode": "email=redact,ip=off"}
    run_stage("pii", again, tmp_path / "o", input_path=tmp_path / "counted", executor=INLINE)
    names = dataset.read_manifest(tmp_path / "o").schema.names
    assert len(names) == len(set(names)) and "pii_ip" in names  # an old column stays
    assert column(tmp_path / "o", "pii_email") == [2, 0]  # this pass's findings
    assert column(tmp_path / "o", "pii_ip") == [1, 0]  # kept from the count pass
    assert column(tmp_path / "o", "text") == ["<EMAIL> and <EMAIL> from 10.0.0.1", "nothing here"]


def test_s3_in_and_out(s3_bucket: str, tmp_path: Path) -> None:
    src = _dataset(tmp_path, [{"text": f"mail u{i}@example.org"} for i in range(120)])
    remote_in = f"{s3_bucket}/in"
    run_stage("compress", {}, remote_in, input_path=src, executor=INLINE)  # a copy on S3
    run = run_stage("pii", {}, f"{s3_bucket}/out", input_path=remote_in, executor=INLINE)
    assert run.report["findings"]["email"] == 120
    got = [r for r in dataset.read_rows(f"{s3_bucket}/out").column("text").to_pylist()]
    assert got == ["mail <EMAIL>"] * 120


def test_encrypted_input_stays_encrypted(tmp_path: Path) -> None:
    rows = [{"text": f"row {i}: call +44 20 7946 {i:04d} or x{i}@example.org"} for i in range(80)]
    src = _dataset(tmp_path, rows)
    enc, keys = encrypted_copy(src, tmp_path)
    out = tmp_path / "out"
    config = {"source_column": "id"}
    run = run_stage("pii", config, out, input_path=enc, executor=INLINE, key_file=str(keys))
    plain = run_stage("pii", config, tmp_path / "plain", input_path=src, executor=INLINE)
    found = manifest(out)
    assert found["encryption"] is not None
    with pytest.raises(Exception):  # noqa: B017 - any reader error: the footer is encrypted
        pq.read_table(out / found["shards"][0]["path"])
    reader = ReadOptions(str(keys), dataset.read_manifest(out).encryption)
    got = pa.concat_tables(reader.read_table(out / s["path"]) for s in found["shards"])
    assert got.column("text").to_pylist() == column(tmp_path / "plain", "text")
    assert run.report["findings"] == plain.report["findings"]
    assert run.report["by_source"] == "not reported: the input is encrypted"


def test_resume_after_sigkill_is_identical(tmp_path: Path) -> None:
    docs = generate(400, seed=2)
    src = _dataset(tmp_path, [{"text": t} for t, _ in docs], shard_rows=5)
    clean = tmp_path / "clean"
    run_stage("pii", {}, clean, input_path=src, executor=INLINE)
    out = tmp_path / "out"
    finished = killed_run("pii", {}, src, out)
    assert 5 <= finished < 80 and not (out / dataset.MANIFEST).exists()
    run = run_stage("pii", {}, out, input_path=src, executor=INLINE)
    assert run.status == "ran"
    ours, theirs = manifest(out), manifest(clean)
    assert [s["xxh3_128"] for s in ours["shards"]] == [s["xxh3_128"] for s in theirs["shards"]]


def test_recipe_clean_then_pii_and_the_command_line(tmp_path: Path) -> None:
    """As a user would: a recipe shards man pages and copyright files, cleans and redacts
    them; then the generated `dataprep pii` command on the recipe's output."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in sorted(Path("/usr/share/doc").glob("*/copyright"))[:40]:
        (raw / f"{path.parent.name}.copyright").write_bytes(path.read_bytes())
    for path in sorted(Path("/usr/share/man/man1").glob("*.1.gz"))[:20]:
        (raw / path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "version: 1\nname: tidy\nvars: {root: work}\n"
        "input: {path: raw/, format: text}\n"
        "stages:\n"
        "  - {id: shards, op: shard, params: {shard_rows: 20}}\n"
        "  - {id: tidy, op: clean, params: {repeated_lines: true}}\n"
        "  - {id: private, op: pii, params: {mode: {phone: count}}}\n"
    )
    cli("run", recipe, "-q", cwd=tmp_path)
    out = tmp_path / "work" / "private"
    texts = column(out, "text")
    assert len(texts) == 60 and not any(STRICT_EMAIL.search(t) for t in texts)
    assert not any(re.search(r"(?m)^\.(?:TH|SH)\b", t) for t in texts)
    assert json.loads((out / dataset.REPORT).read_text())["modes"]["phone"] == "count"
    assert "--mode" in cli("pii", "--help").stdout
    again = cli("pii", out, "-o", tmp_path / "again", "--mode", "all=count", "-q")
    assert again.returncode == 0 and column(tmp_path / "again", "text") == texts
    bad = cli("pii", out, "-o", tmp_path / "bad", "--text-column", "body", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'body'" in bad.stderr


@pytest.mark.slow
def test_hash_mode_on_ray_and_a_process_pool_matches_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key travels to workers inside the config (never in a file): a local Ray cluster
    and a process pool write the same shards as a run in this process."""
    docs = generate(120, seed=9)
    src = _dataset(tmp_path, [{"text": t} for t, _ in docs], shard_rows=30)
    monkeypatch.setenv("DATAPREP_PII_KEY", KEY)
    config = {"mode": "all=hash"}
    run_stage("pii", config, tmp_path / "inline", input_path=src, executor=INLINE)
    cli("pii", src, "-o", tmp_path / "pool", "--mode", "all=hash", "-w", "2", "-q")
    cli("pii", src, "-o", tmp_path / "ray", "--mode", "all=hash", "--executor", "ray", "-q")
    sums = {
        name: [s["xxh3_128"] for s in manifest(tmp_path / name)["shards"]]
        for name in ("inline", "pool", "ray")
    }
    assert sums["inline"] == sums["pool"] == sums["ray"] and len(sums["inline"]) == 4
    assert "<EMAIL:" in "".join(column(tmp_path / "ray", "text"))


def test_a_partitioned_dataset_keeps_its_partitions(tmp_path: Path) -> None:
    """`pii` after `partition` keeps each shard's partition tag and its pNNNNN- file name
    (both were dropped: untagged part-NNNNN shards, so the report's rows per partition and a
    glob of one partition were lost); every row stays in its own partition's shard."""
    rows = [{"id": f"d{i}", "text": f"mail u{i}@example.org now"} for i in range(30)]
    src = _dataset(tmp_path, rows, shard_rows=10)
    part = tmp_path / "part"
    run_stage("partition", {"key": "id", "partitions": 3}, part, input_path=src, executor=INLINE)
    run_stage("pii", {"count_columns": True}, tmp_path / "o", input_path=part, executor=INLINE)
    for ids, got in partition_pairs(part, tmp_path / "o"):
        assert got.column("id").to_pylist() == ids
        assert set(got.column("text").to_pylist()) <= {"mail <EMAIL> now"}
        assert set(got.column("pii_email").to_pylist()) <= {1}


def _raw_with_pii_email(tmp: Path) -> Path:
    """Raw JSONL whose own `pii_email` column (a user's label) is named like a count column."""
    raw = tmp / "raw"
    raw.mkdir()
    rows = [
        {"id": f"d{i}", "text": f"write to u{i}@example.org", "pii_email": lab}
        for i, lab in enumerate(["reviewed", "consented"] * 3)
    ]
    (raw / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return raw


def test_a_user_column_named_like_a_count_column_is_not_overwritten(tmp_path: Path) -> None:
    """A user's own `pii_email` column stops `pii --count-columns` with one sentence naming it
    (it was silently replaced by counts), before any output exists; no count columns, or the
    kind off, keep it; --replace-columns overwrites on request; a column an earlier pii wrote
    is still replaced (a rerun stays idempotent), also through another stage."""
    cli("shard", _raw_with_pii_email(tmp_path), "-o", tmp_path / "ds")
    mine = column(tmp_path / "ds", "pii_email")
    proc = cli("pii", tmp_path / "ds", "-o", tmp_path / "o", "--count-columns", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "'pii_email'" in proc.stderr
    assert "--replace-columns" in proc.stderr
    assert not (tmp_path / "o" / dataset.MANIFEST).exists()
    cli("pii", tmp_path / "ds", "-o", tmp_path / "plain")
    assert column(tmp_path / "plain", "pii_email") == mine
    off = ["--count-columns", "--mode", "email=off"]
    cli("pii", tmp_path / "ds", "-o", tmp_path / "off", *off)
    assert column(tmp_path / "off", "pii_email") == mine
    assert column(tmp_path / "off", "pii_ip") == [0] * 6
    cli("pii", tmp_path / "ds", "-o", tmp_path / "r", "--count-columns", "--replace-columns")
    assert column(tmp_path / "r", "pii_email") == [1] * 6
    count = ["--count-columns", "--mode", "all=count"]
    cli("filter", tmp_path / "r", "-o", tmp_path / "f", "--where", "pii_email >= 0")
    cli("pii", tmp_path / "f", "-o", tmp_path / "again", *count)  # pii's own column now
    assert column(tmp_path / "again", "pii_email") == [0] * 6  # the addresses are redacted
    proc = cli("pii", tmp_path / "off", "-o", tmp_path / "o2", "--count-columns", check=False)
    assert proc.returncode == 2 and "'pii_email'" in proc.stderr  # still the user's column
    assert "'pii_ip'" not in proc.stderr  # that one the earlier pii wrote


def test_a_recipe_stops_at_plan_time_on_a_clashing_count_column(tmp_path: Path) -> None:
    """In a recipe the clash is known from the schema before the first stage runs; a second
    pii after one that wrote the columns is no clash."""
    import yaml

    recipe = tmp_path / "recipe.yaml"
    stages = [
        {"id": "shards", "op": "shard"},
        {"id": "first", "op": "pii", "params": {"count_columns": True, "mode": "email=off"}},
        {"id": "again", "op": "pii", "params": {"count_columns": True, "mode": "email=off"}},
        {"id": "all", "op": "pii", "params": {"count_columns": True}},
    ]
    recipe.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "t",
                "input": {"path": str(_raw_with_pii_email(tmp_path))},
                "vars": {"root": str(tmp_path / "work")},
                "executor": {"kind": "local", "workers": 1},
                "stages": stages,
            }
        )
    )
    proc = cli("run", recipe, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "stages[3]" in proc.stderr and "'pii_email'" in proc.stderr
    assert "replace_columns" in proc.stderr and "'pii_ip'" not in proc.stderr
    assert not (tmp_path / "work" / "shards").exists()
