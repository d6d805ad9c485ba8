"""The kiosk's, the hall display's and the counter unit's texts come from gettext catalogues a
translator edits without touching code — read by one loader (protocol/catalogue.py) that the
server's pages use too."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po as babel_read_po

from protocol.catalogue import Catalogue, read_po

ROOT = Path(__file__).resolve().parent.parent

# domain -> (its locale directory, the languages that must be complete, the code that uses it)
DOMAINS = {
    "kiosk": (ROOT / "kiosk" / "locale", ("pl", "en", "uk")),
    "display": (ROOT / "display" / "locale", ("pl", "en", "uk")),
    "counter": (ROOT / "counter" / "locale", ("pl", "en")),
    "clerk": (ROOT / "server" / "locale", ("pl", "en")),  # the web clerk panel (a server page)
}
ALL_CATALOGUES = sorted(
    p for d in ("server", "kiosk", "display", "counter") for p in (ROOT / d / "locale").rglob("*.po*")
)


def catalogue(domain: str) -> Catalogue:
    return Catalogue(DOMAINS[domain][0], domain)


@pytest.mark.parametrize("path", ALL_CATALOGUES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_devices_light_reader_reads_every_catalogue_as_babel_does(path):
    """The devices carry no Babel; their stdlib reader must agree with it on every file in the tree."""
    with path.open("rb") as f:
        babel = [m for m in babel_read_po(f) if m.id]
    _, ours = read_po(path)
    assert [(e.context, e.id, e.plural, e.strings, e.fuzzy) for e in ours] == [
        (
            m.context or "",
            m.id if isinstance(m.id, str) else m.id[0],
            "" if isinstance(m.id, str) else m.id[1],
            (m.string,) if isinstance(m.string, str) else tuple(m.string),
            m.fuzzy,
        )
        for m in babel
    ]


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_resident_and_clerk_language_of_a_device_is_complete(domain):
    c = catalogue(domain)
    required = DOMAINS[domain][1]
    assert c.languages()[: len(required)] == required or set(required) <= set(c.languages())
    assert c.languages()[0] == "pl"
    for lang in required:
        assert c.missing(lang) == [], (domain, lang)
    for lang in required:
        if lang == "en":
            continue
        _, entries = read_po(c.po_path(lang))
        empty = [e.context for e in entries if not all(e.strings)]
        assert empty == [], f"{domain}/{lang}: empty msgstr for {empty}"


def _keys_called(files: list[Path], functions: set[str]) -> set[str]:
    """String constants in the first argument of calls to ``functions`` (``t("a" if x else "b", ...)``)."""
    keys: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in functions and not isinstance(node.args[0], ast.JoinedStr):  # f"month_{m}": below
                    keys |= {
                        c.value
                        for c in ast.walk(node.args[0])
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    }
    return keys


def test_every_key_the_kiosk_uses_is_in_its_template():
    from kiosk import visit

    template = set(catalogue("kiosk").template())
    used = _keys_called(sorted((ROOT / "kiosk").glob("*.py")), {"t"})
    used |= (
        set(visit.REFUSALS_EXPLAINED) | set(visit.BOOKING_REFUSALS) | visit.FAULT_KEYS | set(visit.SMS_WORDS.values())
    )
    printed = _keys_called([ROOT / "kiosk" / "ticket_layout.py"], {"both"}) | {"go_to", "est_wait"}
    assert used and printed
    assert used - template == set()
    assert {f"print_{k}" for k in printed} - template == set()


def test_every_key_the_display_and_the_counter_use_is_in_their_templates():
    from counter import presenter

    shown = _keys_called(sorted((ROOT / "display").glob("*.py")), {"caption", "text"})
    assert {"now_calling", "called_again", "waiting", "other_rooms", "number", "counter"} <= shown
    from display.texts import WEEKDAYS

    shown |= {f"weekday_{day}" for day in WEEKDAYS} | {f"month_{m}" for m in range(1, 13)}
    assert shown - set(catalogue("display").template()) == set()
    said = _keys_called(sorted((ROOT / "counter").glob("*.py")), {"text"})
    said |= {*presenter.REFUSAL_TEXT.values(), *presenter.GENTLE_REFUSAL_TEXT.values()}
    said |= set(presenter.RATING_REFUSAL_TEXT.values())
    assert said - set(catalogue("counter").template()) == set()


def test_a_counter_text_fits_the_16_column_display_in_plain_letters():
    c = catalogue("counter")
    for lang in c.languages():
        for key in c.template():
            text = c.text(key, lang)
            if "{" not in text:
                assert len(text) <= 16, (lang, key, text)
                assert text.isascii(), (lang, key, text)


def test_the_kiosk_says_the_code_length_in_the_three_polish_plural_forms():
    """Polish counts in three forms ("1 znak", "2 znaki", "5 znaków"; 12-14 and 22 follow the
    rule, not the last digit alone), Ukrainian likewise; the PO header's Plural-Forms decides."""
    from kiosk.texts import t
    from kiosk.visit import CODE_LENGTH

    pl = {n: t("booking_short", "pl", n=n) for n in (1, 2, 4, 5, 12, 22, 25)}
    assert pl == {
        1: "Kod ma 1 znak. Wpisz brakujące.",
        2: "Kod ma 2 znaki. Wpisz brakujące.",
        4: "Kod ma 4 znaki. Wpisz brakujące.",
        5: "Kod ma 5 znaków. Wpisz brakujące.",
        12: "Kod ma 12 znaków. Wpisz brakujące.",
        22: "Kod ma 22 znaki. Wpisz brakujące.",
        25: "Kod ma 25 znaków. Wpisz brakujące.",
    }
    uk = [t("booking_short", "uk", n=n) for n in (1, 3, 11, 21)]
    assert uk == [
        "Код має 1 знак. Введіть решту.",
        "Код має 3 знаки. Введіть решту.",
        "Код має 11 знаків. Введіть решту.",
        "Код має 21 знак. Введіть решту.",
    ]
    assert [t("booking_short", "en", n=n) for n in (1, 6)] == [
        "The code has 1 character. Type the rest.",
        "The code has 6 characters. Type the rest.",
    ]
    assert t("booking_title", "pl", n=CODE_LENGTH).startswith("Wpisz kod rezerwacji (6 znaków)\n")


def test_the_kiosk_keypad_counts_the_code_in_the_residents_language():
    """Through the kiosk's own model (as tests/test_kiosk_visit.py builds it): a short code gets
    the note with the code's length in the plural form of the resident's language."""
    from tests.test_kiosk_visit import kiosk

    v = kiosk(bookings=True)
    v.set_lang("uk")
    v.start_booking()
    v.key("A")
    v.submit()
    assert v.code_note == "Код має 6 знаків. Введіть решту."


def run_with_czech(tmp_path: Path, role: str, translated: dict[tuple[str, str], str], script: str) -> list[str]:
    """What ``script`` prints in a copy of ``role`` whose only change is one new file,
    locale/cs/LC_MESSAGES/<role>.po: the template with ``translated`` ((msgctxt, msgid) ->
    msgstr) filled in and every other entry left untranslated, as a translator starts."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / role, checkout / role, ignore=shutil.ignore_patterns("__pycache__"))
    po = (checkout / role / "locale" / f"{role}.pot").read_text(encoding="utf-8")
    for (context, msgid), msgstr in translated.items():
        entry = f'msgctxt "{context}"\nmsgid "{msgid}"\nmsgstr ""'
        assert po.count(entry) == 1, entry
        po = po.replace(entry, f'msgctxt "{context}"\nmsgid "{msgid}"\nmsgstr "{msgstr}"')
    target = checkout / role / "locale" / "cs" / "LC_MESSAGES"
    target.mkdir(parents=True)
    (target / f"{role}.po").write_text(po, encoding="utf-8")
    env = {"PYTHONPATH": f"{checkout}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=checkout)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_a_translator_adds_a_kiosk_language_with_one_po_file(tmp_path):
    """Copy the template to cs/LC_MESSAGES/kiosk.po, translate two entries: the kiosk offers
    Čeština on its language row, says the translated texts and English for the rest."""
    translated = {
        ("language_name", "English"): "Čeština",
        ("choose", "Choose a service to take a ticket"): "Vyberte službu",
    }
    script = (
        "import kiosk.texts as k; print(k.LANGUAGES); print(k.LANGUAGE_NAMES['cs']); "
        "print(k.t('choose', 'cs')); print(k.t('back', 'cs')); from kiosk.config import KioskSection; "
        "print(KioskSection(id='k1', public_url='http://q.local', default_language='cs').default_language)"
    )
    assert run_with_czech(tmp_path, "kiosk", translated, script) == [
        "('pl', 'cs', 'en', 'uk')",
        "Čeština",
        "Vyberte službu",
        "Back",
        "cs",
    ]


def test_a_translator_adds_a_spoken_display_language_with_one_po_file(tmp_path):
    """Copy the template to cs/LC_MESSAGES/display.po and translate the call and the counter:
    ``[audio] languages = ["pl", "cs"]`` is accepted and the hall hears Czech after Polish; the
    recall, not translated yet, reads in English. No code is touched."""
    translated = {
        ("say_call", "Number {ticket}, {counter}"): "Číslo {ticket}, {counter}",
        ("say_counter", "{word} {number}"): "přepážka {number}",
    }
    script = (
        "from display.config import parse_config; from display.speech import Phrases; "
        "from hardware.audio import Announcement; "
        'a = parse_config(\'[audio]\\nlanguages = ["pl", "cs"]\\n\').audio; say = Phrases(tuple(a.languages)); '
        "print(say(Announcement(1, 'A023', '4', 'Stanowisko 4'))); "
        "print(say(Announcement(2, 'B007', '12', 'Kasa 12', recall=True)))"
    )
    assert run_with_czech(tmp_path, "display", translated, script) == [
        "[('pl', 'Numer A 23, stanowisko 4'), ('cs', 'Číslo A 23, přepážka 4')]",
        "[('pl', 'Ponownie numer B 7, kasa 12'), ('cs', 'Again, number B 7, přepážka 12')]",
    ]


def test_a_spoken_language_without_a_catalogue_is_refused_by_name():
    from display.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as e:
        parse_config('[audio]\nlanguages = ["pl", "de"]\n')
    assert str(e.value) == (
        "display config: audio.languages: unknown language 'de' (display/locale has pl, en, uk; "
        "a new language is a PO file there, docs/translating.md)"
    )


def test_a_translator_adds_a_clerk_panel_language_with_one_po_file(tmp_path):
    """The clerk panel's switch offers a language once its PO file exists; an untranslated
    entry reads in English, and the page's nested texts (``errors.*``) keep their shape."""
    from server import catalogue as server_catalogue

    locale = tmp_path / "locale"
    shutil.copytree(server_catalogue.LOCALE_DIR, locale)
    pot = (locale / "clerk.pot").read_text(encoding="utf-8")
    po = pot.replace(
        'msgctxt "language_name"\nmsgid "English"\nmsgstr ""',
        'msgctxt "language_name"\nmsgid "English"\nmsgstr "Українська"',
    )
    po = po.replace('msgctxt "next"\nmsgid "Next"\nmsgstr ""', 'msgctxt "next"\nmsgid "Next"\nmsgstr "Наступний"')
    assert po.count("Українська") == 1 and po.count("Наступний") == 1
    (locale / "uk" / "LC_MESSAGES" / "clerk.po").write_text(po, encoding="utf-8")
    script = (
        "import server.catalogue as c, sys; from pathlib import Path; c.LOCALE_DIR = Path(sys.argv[1]); "
        "import server.clerk_panel as p; print(p.LANGUAGES); print(p.page_language('uk'), p.TEXTS['uk']['next'], "
        "p.TEXTS['uk']['errors']['stale'])"
    )
    out = subprocess.run([sys.executable, "-c", script, str(locale)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "{'pl': 'Polski', 'en': 'English', 'uk': 'Українська'}",
        "uk Наступний Things changed (a double click?) — showing the current state.",
    ]


def test_the_board_captions_and_date_read_the_display_catalogue():
    from datetime import datetime

    from display.board import polish_date
    from display.texts import board_date, caption

    assert caption("now_calling") == "Wywołany numer \u00b7 Now calling"
    assert caption("counter", "\n") == "Stanowisko\nCounter"
    assert polish_date(datetime(2026, 9, 30)) == "środa, 30 września 2026"
    assert board_date(datetime(2026, 12, 7), "uk") == "понеділок, 7 грудня 2026"
    assert board_date(datetime(2026, 12, 7), "en") == "Monday, 7 December 2026"


def test_an_installed_wheel_carries_every_devices_catalogue(tmp_path):
    """Pis install the wheel (deploy/numerek-release builds it with ``pip wheel``): the catalogues
    must be inside it. Built from a clean copy of the tree, so no earlier ``build/`` can help."""
    source = tmp_path / "src"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("numerek-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in ALL_CATALOGUES}
    assert expected and expected <= names, sorted(expected - names)


def test_the_translators_check_names_what_is_missing_and_a_broken_file(tmp_path, capsys):
    from protocol.catalogue import main

    assert main([str(ROOT / "kiosk" / "locale"), "kiosk"]) == 0
    locale = tmp_path / "locale"
    shutil.copytree(ROOT / "kiosk" / "locale", locale)
    po = locale / "uk" / "LC_MESSAGES" / "kiosk.po"
    text = po.read_text(encoding="utf-8")
    po.write_text(text.replace('msgstr "Назад"', 'msgstr ""'), encoding="utf-8")
    capsys.readouterr()
    assert main([str(locale), "kiosk"]) == 1
    total = len(Catalogue(locale, "kiosk").template())
    assert f"uk: {total - 1} of {total} translated, missing: back" in capsys.readouterr().out
    po.write_text(text.replace('msgstr "Назад"', 'msgstr "Назад'), encoding="utf-8")  # an unclosed quote
    assert main([str(locale), "kiosk"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and "kiosk.po:" in out


def test_a_kiosk_default_language_without_a_catalogue_is_refused_with_the_choices():
    import pydantic

    from kiosk.config import KioskSection

    assert KioskSection(id="k1", public_url="http://q.local", default_language="uk").default_language == "uk"
    with pytest.raises(pydantic.ValidationError) as e:
        KioskSection(id="k1", public_url="http://q.local", default_language="de")
    assert "default_language" in str(e.value) and "must be one of pl, en, uk" in str(e.value)
