"""The pages' texts come from gettext catalogues a translator can edit without touching code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from server import catalogue

DOMAINS = ("reports", "admin", "public")


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_text_of_a_page_is_translated_into_polish(domain):
    assert catalogue.missing(domain, "pl") == []
    assert catalogue.languages(domain)[0] == "pl"


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_catalogue_is_a_valid_po_file_with_the_templates_keys(domain):
    template = set(catalogue.template(domain))
    assert template
    for path in catalogue.LOCALE_DIR.glob(f"*/LC_MESSAGES/{domain}.po"):
        with path.open("rb") as f:
            keys = {m.context for m in read_po(f) if m.id}
        assert keys == template, path


def test_the_public_pages_speak_ukrainian_from_their_catalogue():
    assert catalogue.missing("public", "uk") == []
    from server.public import LANGS, TEXTS

    assert LANGS == ("pl", "en", "uk")
    assert TEXTS["uk"]["title"] != TEXTS["en"]["title"]


def test_reports_and_admin_pages_read_their_labels_from_the_catalogues():
    from server.admin import LABELS as admin
    from server.reports.i18n import LABELS as reports

    assert reports["issued"] == {"pl": "Wydane bilety", "en": "Tickets issued"}
    assert admin["title"] == {"pl": "Administracja", "en": "Administration"}


def test_a_translator_adds_a_language_with_a_file_and_no_code(tmp_path):
    """Copy the template, translate one entry: the new language is offered, the untranslated
    entries read in English (never a key), and the page tables carry it."""
    locale = tmp_path / "locale"
    shutil.copytree(catalogue.LOCALE_DIR, locale)
    target = locale / "uk" / "LC_MESSAGES"
    target.mkdir(parents=True, exist_ok=True)
    pot = (locale / "reports.pot").read_text(encoding="utf-8")
    po = pot.replace(
        'msgctxt "issued"\nmsgid "Tickets issued"\nmsgstr ""',
        'msgctxt "issued"\nmsgid "Tickets issued"\nmsgstr "Видані талони"',
    )
    assert po != pot
    (target / "reports.po").write_text(po, encoding="utf-8")
    script = (
        "import server.catalogue as c, sys; from pathlib import Path; c.LOCALE_DIR = Path(sys.argv[1]); "
        "t = c.table('reports'); print(c.languages('reports'), t['issued']['uk'], t['served']['uk'])"
    )
    out = subprocess.run([sys.executable, "-c", script, str(locale)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "('pl', 'en', 'uk') Видані талони Served"
    assert Path(catalogue.__file__).parent.joinpath("locale", "reports.pot").exists()
