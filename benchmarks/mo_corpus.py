"""A labelled multilingual corpus built from the installed gettext catalogues.

Real human translations of the same software, in dozens of languages, are on every Debian
machine under /usr/share/locale/*/LC_MESSAGES/*.mo. Each catalogue maps an English msgid to
its translation (msgstr); concatenating the translations of one catalogue and one locale
gives documents whose language we know from the locale directory name.

Label noise and how it is handled (docs/language-id.md explains each choice):
- untranslated entries (msgstr == msgid) are dropped: they are English in any locale;
- the ISO code catalogues (iso_3166, iso_639, ...) and keyboard layout names are skipped:
  they hold proper nouns (country, language, layout names), not sentences;
- printf/brace placeholders, markup tags, command-line options and menu accelerators are
  removed, and a message with less than half letters is dropped (format strings, paths);
- a locale name is reduced to its language: pt_BR -> pt, zh_CN/zh_TW -> zh, ca@valencia ->
  ca; nb/nb_NO/no -> no (Bokmål, the model's code); a script variant that ISO 639-1 cannot
  express is kept apart (sr@latin -> "sr-Latn") so it is reported but does not pose as
  Cyrillic Serbian.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

LOCALE_ROOT = Path("/usr/share/locale")
SKIP_CATALOGUES = re.compile(r"^(iso_|xkeyboard-config)")
# Locales that are not a human language or only an English variant of quoting style.
SKIP_LOCALES = {"en@boldquot", "en@quot", "en@shaw", "locale.alias"}
SCRIPT_VARIANTS = {"latin": "Latn", "Latn": "Latn", "cyrillic": "Cyrl", "ije": "Cyrl"}
# Bokmål catalogues (nb, nb_NO, no) are labelled "no", the ISO 639-1 code the model reports
# for Norwegian Bokmål (Nynorsk stays "nn"); Moldovan (mo) is Romanian.
LANGUAGE_ALIASES = {"nb": "no", "mo": "ro"}

_PLACEHOLDER = re.compile(
    r"%(\([^)]*\))?[-+ #0-9.*$']*(hh|h|ll|l|L|q|j|z|t|I64)?[diouxXeEfFgGcrsaApSCm%]"
    r"|\{[^{}]*\}|<[^<>]*>|&[a-z]+;|\$\{?\w+\}?|(?<!\w)--?[A-Za-z][\w-]*"
)
_ACCELERATOR = re.compile(r"(?<=\w)_(?=\w)|(?<!\w)[_&](?=\w)")
_SPACE = re.compile(r"\s+")


def label(locale: str) -> str | None:
    """The language label for a locale directory name (None: not a human language)."""
    if locale in SKIP_LOCALES:
        return None
    base, _, variant = locale.partition("@")
    lang = base.split("_")[0]
    lang = LANGUAGE_ALIASES.get(lang, lang)
    script = SCRIPT_VARIANTS.get(variant)
    if script and lang in {"sr", "uz", "be"}:
        # Serbian/Uzbek/Belarusian variants are in the other script than the main catalogue.
        main_script = {"sr": "Cyrl", "uz": "Latn", "be": "Cyrl"}[lang]
        if script != main_script:
            return f"{lang}-{script}"
    return lang


def clean_message(text: str) -> str:
    """Placeholders, tags, options and accelerators removed; whitespace collapsed."""
    text = _PLACEHOLDER.sub(" ", text)
    text = _ACCELERATOR.sub("", text)
    return _SPACE.sub(" ", text).strip()


def catalogue_messages(path: Path) -> Iterator[str]:
    """The translated, cleaned messages of one .mo file, in catalogue order."""
    for msgid, msgstr in read_mo(path.read_bytes()):
        if not msgid or msgstr == msgid:
            continue
        for form in msgstr.split("\0"):  # plural forms are NUL-separated
            text = clean_message(form)
            letters = sum(ch.isalpha() for ch in text)
            if letters >= 2 and letters * 2 >= len(text):
                yield text
                break  # one plural form is enough: the others repeat it


def read_mo(data: bytes) -> Iterator[tuple[str, str]]:
    """(msgid, msgstr) pairs of a GNU .mo file, decoded as UTF-8 (other charsets: skipped).

    Own reader rather than gettext.GNUTranslations: that one fails on catalogues whose header
    has no plural formula, and several installed ones have none."""
    if len(data) < 20:
        return
    magic = int.from_bytes(data[:4], "little")
    order = "little" if magic == 0x950412DE else "big" if magic == 0xDE120495 else None
    if order is None:
        return

    def word(at: int) -> int:
        return int.from_bytes(data[at : at + 4], order)

    n, ids, strs = word(8), word(12), word(16)
    for i in range(n):
        ilen, ioff = word(ids + 8 * i), word(ids + 8 * i + 4)
        slen, soff = word(strs + 8 * i), word(strs + 8 * i + 4)
        try:
            msgid = data[ioff : ioff + ilen].decode("utf-8").split("\0")[0]
            msgstr = data[soff : soff + slen].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\x04" in msgid:  # msgctxt EOT msgid
            msgid = msgid.split("\x04", 1)[1]
        yield msgid, msgstr


def documents(
    min_chars: int = 200, root: Path = LOCALE_ROOT, only: set[str] | None = None
) -> list[tuple[str, str, str]]:
    """(label, catalogue, text) documents of >= min_chars, one catalogue and locale each;
    `only`: just these catalogues (names without .mo)."""
    out: list[tuple[str, str, str]] = []
    for locale_dir in sorted(root.iterdir()):
        lang = label(locale_dir.name)
        if lang is None or not (locale_dir / "LC_MESSAGES").is_dir():
            continue
        for mo in sorted((locale_dir / "LC_MESSAGES").glob("*.mo")):
            if SKIP_CATALOGUES.match(mo.name) or (only is not None and mo.stem not in only):
                continue
            parts: list[str] = []
            size = 0
            for message in catalogue_messages(mo):
                parts.append(message)
                size += len(message) + 1
                if size > min_chars:
                    out.append((lang, mo.stem, "\n".join(parts)))
                    parts, size = [], 0
    return out


def text_per_language(docs: list[tuple[str, str, str]]) -> dict[str, int]:
    """Characters of text per label, largest first."""
    sizes: dict[str, int] = defaultdict(int)
    for lang, _, text in docs:
        sizes[lang] += len(text)
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
