"""Language identification (dataprep.quality.language): accuracy on real translated text
whose language is known from where it came from, nulls, determinism, the missing-package
sentence."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from dataprep.errors import DataprepError
from dataprep.quality import language
from dataprep.quality.language import identify, normalise_language, supported_languages

MO_CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "mo_corpus.py"

# Real text: translations from installed gettext catalogues (GNU grep, dpkg, bash, glib, ...),
# two documents of 200-320 characters per language for the 20 languages with the most text.
SNIPPETS: list[tuple[str, str]] = [
    (  # grep
        "fr",
        ", n'afficher que les fichiers sans lignes sélectionnées , n'afficher "
        "que les fichiers avec des lignes sélectionnées , n'afficher que "
        "le nombre de lignes sélectionnées par FICHIER , insérer des tabulations "
        "(si nécessaire) , afficher l'octet nul après le nom de fichier",
    ),
    (  # dpkg
        "fr",
        "la vérification du paquet a échoué !\nla vérification du paquet "
        "a échoué, mais traitement en cours malgré tout comme demandé\nversion "
        "de déjà installée, paquet ignoré\nmauvaise syntaxe de la version "
        "« »\nla version « » a une mauvaise syntaxe :",
    ),
    (  # dpkg
        "es",
        "leyendo el fichero info del paquete ' ':\nleyendo el fichero statoverride "
        "' '\npaquete reensamblado\nacerca de que contiene , problema de "
        "predependencia:\nacerca de que contiene :\neliminando la arqutiectura "
        "' ' que está actualmente en la base de datos",
    ),
    (  # bash
        "es",
        "builtin [orden-interna-shell [arg ...]]\ncaller [expresión]\nsólo "
        "se puede usar `return' desde una función o un script leído con "
        "`source'\nsólo se puede usar dentro de una función\nno se puede "
        "asignar un nuevo descriptor de fichero para la entrada de bash "
        "desde el df",
    ),
    (  # glib20
        "pt",
        "Lista arquivos na lixeira com seus locais originais\nLista as "
        "chaves e valores, recursivamente Se nenhum ESQUEMA for fornecido, "
        "lista todas as chaves\nLista recursos Se SEÇÃO é fornecida, só "
        "lista os recursos dentro desta seção Se CAMINHO é fornecido, "
        "só lista recursos que casam com o caminho",
    ),
    (  # diffutils
        "pt",
        'FICHEIROS são "FICH1 FICH2" ou "PST1 PST2" or "PST FICH" ou "FICH '
        'PST".\nO ficheiro é enquanto o ficheiro é\nOs ficheiros e são idênticos\nFicheir'
        "os e diferem\nAjuda geral para usar programas GNU:\nSe ou forem "
        "indicados, não há restrições em FICHEIRO(s).",
    ),
    (  # libc
        "uk",
        "Перезавантажуємо « » у кеші вузлів!\nПерезавантажуємо « » до кешу "
        "netgroup!\nПерезавантажуємо « » до кешу служб!\nПерезавантажуємо "
        "« » у кеші бази даних користувачів!\nПомилка під час віддаленого "
        "введення-виведення",
    ),
    (  # systemd
        "uk",
        "Експортування образу контейнера або віртуальної машини\nВилучення "
        "прив'язки пристроїв для місць\nОтримання апаратного серійного "
        "номера\nОтримання UUID продукту\nОтримання опису системи\nЗупинення "
        "системи\nЗупинення системи, коли програми намагаються перешкодити "
        "цьому",
    ),
    (  # Linux-PAM
        "ru",
        "Контекст , используемый при создании ключей, назначен.\nПоследняя "
        "неудачная попытка входа в систему:\nПоследний вход в систему:\nОшибка "
        "буфера памяти\nНеизвестный модуль\nПароль NIS изменить нельзя.\nНовый "
        "пароль :",
    ),
    (  # coreutils
        "ru",
        "Печатает определенные сведения о системе. Если ПАРАМЕТР не задан, "
        "то подразумевается . , напечатать всю информацию, в следующем "
        "порядке, кроме и , если они неизвестны: , напечатать имя ядра "
        ", напечатать имя машины в сети , напечатать информацию о выпуске "
        "ядра",
    ),
    (  # libc
        "de",
        "Kann die RUNPATH/RPATH-Kopie nicht erstellen\nKann keine TLS Datenstrukturen "
        "erzeugen\nDie Pipe zur Kommunikation mit dem Kind-Prozess kann "
        "nicht angelegt werden\nKann den Cache für den Suchpfad nicht erstellen",
    ),
    (  # tar
        "de",
        "kann nicht auf „ “ zugreifen\nkann „ “ nicht abschneiden\nkann "
        "„ “ nicht entfernen (unlink)\nGroß-/Kleinschreibung beachten (Voreinstellung)\n"
        "Medium wechseln, wenn ZAHL × 1024 Bytes geschrieben wurden\nzu "
        "VERZEICHNIS wechseln",
    ),
    (  # gtk20
        "sv",
        "Kunde inte konvertera filnamn\nSkapa mapp\nSkapa i mappen:\nTack\nAnpassad "
        "x\nAnpassad storlek\nAnpassad storlek\nKyrillisk (Translitererad)\nTa "
        "bort fil\nSänker volymen\nTa bort fil\nSkrivbord\nAvstängd\nAnvänd "
        "inte Wintab-API:t [standard]",
    ),
    (  # grep
        "sv",
        "Allmän hjälp för GNU-programvara:\nOgiltig bakåtreferens\nOgiltigt "
        "teckenklassnamn\nOgiltigt sorteringstecken\nOgiltigt innehåll i "
        "\\\nOgiltigt inledande reguljärt uttryck\nOgiltigt intervallslut\nOgiltigt "
        "reguljärt uttryck",
    ),
    (  # wget
        "it",
        "Impossibile ottenere la frequenza di clock REALTIME:\nImpossibile "
        "iniziare il trasferimento PASV.\nImpossibile aprire :\nImpossibile "
        "aprire il file dei cookies :\nImpossibile analizzare la risposta "
        "PASV.\nImpossibile specificare e simultaneamente.",
    ),
    (  # dpkg
        "it",
        "I seguenti pacchetti risultano parzialmente installati. L'installazione "
        "può probabilmente essere completata ritentandola; i pacchetti "
        'possono essere rimossi usando "dselect" o "dpkg ":\nI seguenti '
        "pacchetti non dispongono di un'architettura:",
    ),
    (  # glib20
        "ca",
        "FITXER\nCAMÍ AL FITXER\nFITXER [CAMÍ]\nNo s'ha pogut ubicar memòria\nNo "
        "s'ha pogut canviar al directori « » ( )\nNo s'ha pogut crear el "
        "fitxer « »:\nNo s'ha pogut crear el conducte per comunicar-se "
        "amb el procés fill ( )",
    ),
    (  # libc
        "ca",
        "no s’ha pogut llegir l’ACK d’invalidació\nno s’ha pogut llegir "
        "el mapa d’enllaçat\nno s’ha pogut llegir el nom de l’objecte\nno "
        "s’ha pogut llegir la capçalera de programa\nno s’ha pogut llegir "
        "l’intèrpret del programa",
    ),
    (  # coreutils
        "pl",
        "Tworzenie nazwanych potoków (pipes, FIFOs) o podanych NAZWACH.\nUtworzenie "
        "KATALOGU/ÓW, jeżeli jeszcze nie istnieją.\nUtworzenie pliku specjalnego "
        "o podanej NAZWIE i TYPIE.\nUrządzenie: %Hd, inody: dowiązań: %-5h "
        "typ: %Hr,",
    ),
    (  # gtk20
        "pl",
        "Można wybierać tylko katalogi. Wybrany element nie jest katalogiem, "
        "proszę spróbować użyć innego elementu.\nNależy wybrać prawidłową "
        "nazwę pliku.\nPowłoka Z\nZWJ — łącznik znaków o zerowej szerokości\nZWNJ "
        "— rozłącznik znaków o zerowej szerokości",
    ),
    (  # coreutils
        "tr",
        "üzerine yazdıktan sonra dosyayı ve ona ayrılan alanı kaldır [=NASIL] "
        "gibi; ancak NASIL silineceği denetimini verir , ilerlemeyi göster "
        ", dosya boyutunu bir sonraki tam bloka yuvarlama; bu, olağan "
        "olmayan dosyalar için öntanımlı davranıştır , kıymayı gizlemek "
        "için sıfırlarla son bir kez daha üzerine yaz",
    ),
    (  # apt
        "tr",
        "Bir yanıt arabelleği taşırdı.\nVazgeç.\nKurulum iptal ediliyor.\nBu "
        "işlem tamamlandıktan sonra B disk alanı boşalacak.\nBu işlem tamamlandıktan "
        "sonra B ek disk alanı kullanılacak.\nTüm paketler güncel.\nArgümanlar "
        "çiftler halinde değil",
    ),
    (  # findutils
        "id",
        "bukan nama dari nama yang dikenal\nbukan nama dari grup yang sudah "
        "ada\nbukan nama dari grup yang sudah ada dan ini tidak seperti "
        "sebuah numerik grup ID karena ini memiliki akhiran yang tidak "
        "terduga\nditerminasi oleh sinyal",
    ),
    (  # glib20
        "id",
        "Pantau kejadian\nPantau perubahan berkas dan direktori\nMemantau "
        "perubahan berkas atau direktori.\nMemantau sebuah berkas secara "
        "langsung, tapi tidak melaporkan perubahan\nKaitkan volume tersembunyi "
        "TCRYPT",
    ),
    (  # coreutils
        "zh",
        ", =檔案 的基礎大小 , =大小 依 位元組設定或調整檔案大小\n, 設定每列的第一個欄位"
        "為參照引用 , -- 此功能尚未實現 -- , =數值 每欄的輸出寬度，不計參照引用\n, "
        "逆序排列 , 遞迴顯示子目錄 , 以塊數形式顯示每個檔案分配的尺寸\n, "
        ", 遞迴刪除目錄及其內容 , 刪除空目錄 , 詳細顯示進行的步驟\n, 不列印沒有包含分隔"
        "符號的列 =字串 使用指定的字串作為輸出分隔符號，預設採用輸入 的分隔符號",
    ),
    (  # glib20
        "zh",
        "创建与子进程通讯的管道失败（ ）\n在子进程中 dup() 失败（ ）\n为子进程复制文件描"
        "述符失败（ ）\n执行子进程失败（ ）\n执行子进程“ ”失败（ ）\n执行助手程序（ "
        "）失败\n用 URI“ ”展开 exec 行“ ”失败\n无法找到处理 URI Scheme“ "
        "”的默认应用程序\n无法找到处理内容类型“ ”的默认应用程序\nfork 失败（ "
        "）\nfork 子进程失败（ ）\n获取文件“ ”的属性失败 : fstat() 失败：",
    ),
    (  # apt
        "vi",
        "Máy phục vụ HTTP đã gửi một dòng đầu Content-Length (độ dài nội "
        "dung) không hợp lệ\nMáy phục vụ HTTP đã gửi một dòng đầu Content-Range "
        "(phạm vi nội dung) không hợp lệ\nMáy phục vụ HTTP đã gửi một dòng "
        "đầu trả lời không hợp lệ",
    ),
    (  # libc
        "vi",
        "bảng mã ký tự chứa quá ít byte\nquá nhiều đối số\nbảng mã ký tự "
        "chứa quá nhiều byte\nquá nhiều lỗi nên chịu thua\nquá nhiều giây "
        "năm nhuận\nquá nhiều kiểu thời gian địa phương\nquá nhiều thời "
        "điểm chuyển tiếp",
    ),
    (  # tar
        "bg",
        "създаване на архив с посочения ФОРМАТ\nсъздаване на архив с такова "
        "ИМЕ, а при извеждане или извличане името на тома се сравнява "
        "с този ШАБЛОН\nработа с многотомен архив\nсъздаденият файл не е "
        "рехав\nзадаването на времето на промяна и режима за достъп на "
        "извлечените директории да се извърши след завършването на извличането",
    ),
    (  # glib20
        "bg",
        "Няма запис в DNS от указания вид за „ “\nНе е указан видът MIME "
        "в отметката за адреса „ “\nЛипсва сертификат, шифриран с PEM\nЛипсва "
        "частен ключ, шифриран с PEM\nНе е указан адрес\nНе е регистрирано "
        "приложение за обработка на този вид файлове",
    ),
    (  # diffutils
        "sr",
        "занемарује промене услед празних редова\nопција „ “ није подржана "
        "за директоријуме\n, =НАЗИВ исписује стопљену датотеку да прикаже "
        "„#ifdef НАЗИВ“ разлике\nзанемарује промене услед развијања табулатора\nзанемару"
        "је промене услед развијања табулатора",
    ),
    (  # libc
        "sr",
        "мапа знакова „ “ је већ дефинисана\nмапа знакова „ “ није АСКРИ "
        "сагласна, језик није ИСО Ц садејствен [ =аскри]\nнисам нашао датотеку "
        "мапе знакова „ “\nскупови знакова са закључаним стањима нису подржани",
    ),
    (  # gtk20
        "cs",
        'Grafika\nV tomto kontextu je atribut " " v prvku neplatný\nAtribut '
        '" " provedl dvakrát opakování na stejném prvku\nOvěření\nNa je '
        "vyžadováno ověření\nJe vyžadováno ověření, aby bylo možné získat "
        "soubor z\nJe vyžadováno ověření, aby bylo možné získat atributy "
        "úlohy",
    ),
    (  # wget
        "cs",
        "Zpracovává se metaURL …\nTunelování skrz proxy se nezdařilo:\nChyba "
        "( ) při čtení hlaviček.\nHloubka rekurze překročila maximální "
        "hloubku .\nRekurzivní povolení/zakázání:\nRekurzivní stahování:\nse "
        "zamítá (neplatný záznam).",
    ),
    (  # dpkg
        "ro",
        ": nu se poate crea contextul de comprimare zstd\n: nu se poate "
        "crea contextul de decomprimare zstd\n: fișierul conffile „ ” nu "
        "este fișier sau legătură simbolică (= „ ”)\n: fișierul conffile "
        "„ ” arată către un nume de fișier degenerat („ ” este legătură "
        "simbolică spre „ ”)",
    ),
    (  # glib20
        "ro",
        "montarea nu implementează operația de demontare „unmount”\nmontarea "
        "nu implementează „unmount” sau „unmountwithoperation”\nnumele "
        "este prea lung în (*MARK), (*PRUNE), (*SKIP), sau (*THEN)\nnume:\npseudonimul "
        "trebuie să aibă minim 2 caractere",
    ),
    (  # libc
        "fi",
        "tiedosto on liian lyhyt\nzic:n 2015:tä aikaisemmat versiot eivät "
        "käsittele ” ”\nzic:n 2018:aa aikaisemmat versiot hylkäävät sekunnin "
        "murto-osat\nvapautettiin tavua -välimuistissa\ntiedoston tilan "
        "luku epäonnistui",
    ),
    (  # wget
        "fi",
        ": aprintf: tekstipuskuri on liian suuri ( tavua), keskeytetään.\n: "
        "tiedoston tilan lukeminen epäonnistui:\n: kohteen varmenteen todentaminen "
        "epäonnistui, myöntäjä: :\n: vääristynyt aikaleima.\n: virheellinen "
        "valitsin – ” ”",
    ),
    (  # libc
        "nl",
        "Te veel gebruikers\nDe uitvoering van een programma volgen door "
        "steeds de naam van de uitgevoerde functie te printen. =BESTAND "
        "geen programma uitvoeren; gegevens uit BESTAND printen -?, deze "
        "hulptekst tonen een korte gebruikssamenvatting tonen , de programmaversie "
        "tonen",
    ),
    (  # bash
        "nl",
        "Urgente in-/uitvoertoestand\nGebruik: [opties] [opties] scriptbestand...\nGebru"
        "ik \" \" om de shell te verlaten.\nGebruik de opdracht 'bashbug' "
        "om fouten in bash te rapporteren.\nGebruikerssignaal 1\nGebruikerssignaal "
        "2",
    ),
]


def _mo_corpus():
    spec = importlib.util.spec_from_file_location("mo_corpus", MO_CORPUS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accuracy(labels: list[str], predicted: list[str | None]) -> dict[str, float]:
    right, total = Counter(), Counter()
    for want, got in zip(labels, predicted, strict=True):
        total[want] += 1
        right[want] += got == want
    return {lang: right[lang] / total[lang] for lang in total}


def test_stored_snippets_identified():
    """40 real documents in 20 languages: at most one may be missed."""
    labels = [lang for lang, _ in SNIPPETS]
    got, scores = identify([text for _, text in SNIPPETS])
    misses = [(w, g) for w, g in zip(labels, got.to_pylist(), strict=True) if w != g]
    assert len(misses) <= 1, misses
    assert all(0.5 < s <= 1.0 for s in scores.to_pylist())


def test_catalogue_documents_macro_accuracy():
    """Documents built from the installed catalogues of GNU tools: the 20 languages with the
    most text there reach >= 0.95 on average (the benchmark measures all catalogues)."""
    corpus = _mo_corpus()
    if not corpus.LOCALE_ROOT.is_dir():
        pytest.skip("no gettext catalogues on this machine (the stored snippets still ran)")
    docs = corpus.documents(only={"coreutils", "grep", "tar", "sed", "findutils", "diffutils"})
    top = list(corpus.text_per_language(docs))[:20]
    if len(top) < 20:
        pytest.skip(f"only {len(top)} languages in the installed catalogues")
    by_lang: dict[str, list[str]] = defaultdict(list)
    for lang, _, text in docs:
        if lang in top and len(by_lang[lang]) < 25:
            by_lang[lang].append(text)
    labels = [lang for lang in top for _ in by_lang[lang]]
    got, _ = identify([t for lang in top for t in by_lang[lang]])
    per_lang = _accuracy(labels, got.to_pylist())
    macro = sum(per_lang.values()) / len(per_lang)
    assert macro >= 0.95, sorted(per_lang.items(), key=lambda kv: kv[1])[:5]
    # Croatian is mostly answered Bosnian (one continuum; docs/language-id.md): the others
    # must each stay above 0.88 (at most 3 misses in 25).
    weak = {lang: acc for lang, acc in per_lang.items() if acc < 0.88 and lang != "hr"}
    assert not weak, weak


def test_empty_whitespace_and_null_have_no_language():
    french = "Ceci est une phrase écrite en français, assez longue."
    # "a": no n-gram of the model in it; "1234 5678": the model's "no linguistic content"
    texts = pa.array(["", "   \n\t ", None, "a", "1234 5678", french])
    got, scores = identify(texts)
    assert got.type == pa.string() and scores.type == pa.float32()
    assert got.to_pylist()[:5] == [None] * 5
    assert scores.to_pylist()[:5] == [0.0] * 5
    assert got[5].as_py() == "fr" and scores[5].as_py() > 0.9


def test_no_texts_no_model_needed(monkeypatch):
    monkeypatch.setitem(sys.modules, "py3langid", None)
    language._model.cache_clear()
    try:
        got, scores = identify([])
    finally:
        language._model.cache_clear()
    assert len(got) == 0 and len(scores) == 0


def test_missing_package_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    language._model.cache_clear()
    try:
        with pytest.raises(DataprepError) as info:
            identify(["Das ist ein Satz."])
    finally:
        language._model.cache_clear()
    message = str(info.value)
    assert "py3langid" in message and "pip install" in message and "\n" not in message


def test_deterministic_and_independent_of_batch_and_chunking():
    texts = [text for _, text in SNIPPETS]
    first = identify(texts)
    again = identify(list(reversed(texts)))
    chunked = identify(pa.chunked_array([texts[:7], texts[7:]]))
    assert first[0].equals(chunked[0]) and first[1].equals(chunked[1])
    assert first[0].to_pylist() == list(reversed(again[0].to_pylist()))
    assert first[1].to_pylist() == list(reversed(again[1].to_pylist()))


def test_only_the_head_of_a_long_document_is_read():
    german = next(text for lang, text in SNIPPETS if lang == "de")
    english = "This part of the document is written in plain English prose. " * 200
    got, _ = identify([german + "\n" + english], max_chars=len(german))
    assert got[0].as_py() == "de"
    got, _ = identify([german + "\n" + english], max_chars=100_000)
    assert got[0].as_py() == "en"
    with pytest.raises(DataprepError):
        identify(["text"], max_chars=0)


def test_codes_typed_by_users_are_normalised():
    assert normalise_language("pt_BR") == "pt"
    assert normalise_language("zh-TW") == "zh"
    assert normalise_language(" EN ") == "en"
    assert normalise_language("nb") == "no"
    assert normalise_language("yue") == "zh"
    codes = supported_languages()
    assert {"en", "de", "fr", "zh", "ja", "no", "sr"} <= set(codes)
    assert "yue" not in codes and "zxx" not in codes and codes == sorted(codes)


def test_same_answers_as_py3langid_one_document_at_a_time():
    """The batched automaton and sums reproduce the library's own per-document classify
    (the oracle) on real text of many lengths and scripts, including tails longer than the
    batch and documents that end up alone in the automaton."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    oracle = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    texts = [text for _, text in SNIPPETS]
    texts += [a[: 7 * (i + 1)] for i, a in enumerate(texts[:40])]  # 7..280 characters
    texts += ["".join(t for _, t in SNIPPETS[i::9]) * 3 for i in range(3)]  # long mixes
    texts += ["ALL CAPS TEXT IS READ LOWER-CASED BY THE MODEL", "Ünïcödé cafe\u0301", "Hallo Welt"]
    # Serbian in Latin script (sr@latin catalogues): the model's two Serbian columns share
    # the probability, which must be added up as py3langid does
    texts += [
        "„ “ nije ispravan naziv\n„ “ nije ispravan naziv: „ “\n(*MARK) mora da sadrži argument",
        "KLJUČ Ključ unutar šeme\nPUTANJA Putanja resursa\nPUTANJA Putanja (opcionalno) resursa",
        "(Upišite bilo koji znak da zatvorite ovaj prozor)\n„ “ je navedeno; izlazim.",
    ]
    got, scores = identify(texts, max_chars=100_000)
    for text, code, score in zip(texts, got.to_pylist(), scores.to_pylist(), strict=True):
        want, want_score = oracle.classify(text)
        want = {"yue": "zh", "wuu": "zh"}.get(want, want)
        assert (code, round(score, 4)) == (want, round(want_score, 4)), text[:60]


@pytest.mark.parametrize(
    "batch_bytes, min_vector_docs", [(300, 1), (5000, 1_000_000), (1 << 30, 2), (1, 1)]
)
def test_batching_does_not_change_answers(monkeypatch, batch_bytes, min_vector_docs):
    """Tiny batches, one document per batch, everything in the plain loop, or everything in
    the stepped automaton: the same answers, bit for bit."""
    texts = [text for _, text in SNIPPETS] + ["".join(t for _, t in SNIPPETS[:6])]
    want = identify(texts)
    monkeypatch.setattr(language, "_BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(language, "_MIN_VECTOR_DOCS", min_vector_docs)
    got = identify(texts)
    assert got[0].equals(want[0]) and got[1].equals(want[1])


def test_importing_does_not_load_the_library():
    """`import dataprep...language` stays cheap: py3langid and its model load on first use."""
    code = "import sys, dataprep.quality.language; print('py3langid' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_large_string_input():
    texts = pa.array([text for _, text in SNIPPETS[:6]] + [None], pa.large_string())
    got, scores = identify(texts)
    want, want_scores = identify([text for _, text in SNIPPETS[:6]] + [None])
    assert got.equals(want) and scores.equals(want_scores)
