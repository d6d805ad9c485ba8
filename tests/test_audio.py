"""The display's sound: words, chime, volume, the announcement queue and ALSA playback.

Real espeak-ng, sox and aplay; the FileOutput sink records what was "played" and when.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from display.speech import Phrases, announcement_text
from hardware.audio import (
    RATE,
    AlsaOutput,
    Announcement,
    AnnouncementQueue,
    Announcer,
    AudioError,
    EspeakSpeech,
    FileOutput,
    load_chime,
    readable,
    synthesise_chime,
    wav_bytes,
    wav_duration,
    wav_frames,
)
from tests.harness import wait_for


def soxi_duration(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def rms(path: Path) -> float:
    out = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True).stderr
    line = next(line for line in out.splitlines() if line.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


ROOT = Path(__file__).resolve().parent.parent
RECALL_WAV = ROOT / "display" / "sounds" / "recall.wav"


def call(seq: int, ticket: str = "A023", counter_name: str = "Stanowisko 4", recall: bool = False) -> Announcement:
    return Announcement(seq=seq, ticket=ticket, counter="4", counter_name=counter_name, recall=recall)


def test_polish_announcement_spells_the_prefix_and_drops_leading_zeros():
    assert announcement_text(call(1), "pl") == "Numer A 23, stanowisko 4"
    assert announcement_text(call(1, "P100", "Stanowisko 12"), "pl") == "Numer P 100, stanowisko 12"
    assert announcement_text(call(1, "AB0007", "Kasa 2"), "pl") == "Numer A B 7, kasa 2"


def test_english_announcement_names_the_counter_by_its_number():
    assert announcement_text(call(1), "en") == "Number [['eI]] 23, counter 4"
    assert announcement_text(call(1, "B007", "Pokój 15"), "en", counter_word_en="desk") == "Number [[b'i:]] 7, desk 15"


def espeak_phonemes(text: str, voice: str) -> str:
    done = subprocess.run(["espeak-ng", "-v", voice, "-q", "-x", text], capture_output=True, text=True, check=True)
    return " ".join(done.stdout.split())


@pytest.mark.parametrize("letter", list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_english_announcement_says_the_tickets_letter_by_its_name_never_as_the_article(letter):
    """espeak-ng reads "Number A 23" with the article "uh" (a#): the letter must be its name,
    as espeak-ng says the letter alone ("A" -> 'eI), stressed."""
    alone = espeak_phonemes(letter, "en")
    said = espeak_phonemes(announcement_text(call(1, f"{letter}023"), "en"), "en")
    assert said.split()[1] == alone, f"{letter}: {said!r}"
    assert "a#" not in said


def test_plain_english_text_would_say_the_article_so_the_phonemes_matter():
    """Why LETTER_NAMES_EN exists: the letter written plainly is read as the article."""
    assert espeak_phonemes("Number A 23", "en").split()[1] == "a#"


def test_the_installer_reads_the_letters_not_their_phonemes():
    assert readable(announcement_text(call(1, "AB023"), "en")) == "Number A B 23, counter 4"


def test_a_recall_says_again_in_both_languages():
    assert announcement_text(call(2, recall=True), "pl") == "Ponownie numer A 23, stanowisko 4"
    assert announcement_text(call(2, recall=True), "en") == "Again, number [['eI]] 23, counter 4"


def test_ukrainian_announcement_says_number_and_window_from_the_catalogue():
    assert announcement_text(call(1), "uk") == "Номер A 23, вікно 4"
    assert announcement_text(call(2, "AB0007", "Kasa 2", recall=True), "uk") == "Повторно номер A B 7, вікно 2"


def test_the_ukrainian_voice_reads_the_tickets_latin_letter_by_its_name():
    """espeak-ng's Ukrainian voice says a Latin "A" as the letter's (English) name, as a
    resident reads the ticket, and the number in Ukrainian ("двадцять три")."""
    said = espeak_phonemes(announcement_text(call(1), "uk"), "uk")
    assert said.startswith("n'omir (en)'eI(uk) dv'Adtsjat;tR;'i"), said


def test_the_announcer_says_in_order_the_phrases_it_is_handed(tmp_path):
    """The hardware layer has no words of its own: what the display's catalogue gives is said."""
    spoken = []

    class Said(EspeakSpeech):
        def speak(self, text: str, lang: str) -> bytes:
            spoken.append((lang, text))
            return super().speak(text, lang)

    with Announcer(FileOutput(tmp_path, speed=50), Said(), Phrases(("pl", "uk", "en"))) as a:
        a.render(call(1, recall=True))
    assert spoken == [
        ("pl", "Ponownie numer A 23, stanowisko 4"),
        ("uk", "Повторно номер A 23, вікно 4"),
        ("en", "Again, number [['eI]] 23, counter 4"),
    ]


def test_no_spoken_word_is_written_in_the_hardware_layer():
    """The phrases are the display's catalogue's (display/locale), not strings in hardware/."""
    words = {"numer", "number", "ponownie", "again", "stanowisko", "номер", "вікно"}
    tree = ast.parse((ROOT / "hardware" / "audio.py").read_text(encoding="utf-8"))
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings, not words said
    said = [
        c.value
        for c in ast.walk(tree)
        if isinstance(c, ast.Constant) and isinstance(c.value, str) and id(c) not in docs
        if words & set(re.findall(r"\w+", c.value.lower()))
    ]
    assert said == []


def test_announcement_is_the_chime_then_speech_of_plausible_length(tmp_path):
    out = FileOutput(tmp_path, speed=50)
    chime = wav_frames(synthesise_chime())
    with Announcer(out, EspeakSpeech(), Phrases(("pl",)), volume=1.0, chime=chime) as announcer:
        announcer.announce(call(7))
        assert announcer.wait_idle(30)
    [entry] = FileOutput.read_log(tmp_path)
    assert (entry["seq"], entry["ticket"], entry["recall"]) == (7, "A023", False)
    wav = tmp_path / entry["file"]
    assert 1.5 <= soxi_duration(wav) <= 8.0
    frames = wav_frames(wav.read_bytes())
    assert frames[: len(chime)] == chime, "the announcement must open with the chime"
    speech = frames[len(chime) :]
    assert any(speech[i : i + 2] != b"\x00\x00" for i in range(0, len(speech), 2)), "speech after the chime is silent"


def test_english_after_polish_makes_the_announcement_longer(tmp_path):
    durations = {}
    for langs in (["pl"], ["pl", "en"]):
        d = tmp_path / "-".join(langs)
        with Announcer(FileOutput(d, speed=50), EspeakSpeech(), Phrases(langs)) as announcer:
            announcer.announce(call(1))
            assert announcer.wait_idle(30)
        durations["-".join(langs)] = soxi_duration(d / FileOutput.read_log(d)[0]["file"])
    assert durations["pl-en"] > durations["pl"] + 1.0


def test_volume_setting_makes_the_announcement_quieter(tmp_path):
    levels = {}
    for volume in (1.0, 0.25):
        d = tmp_path / str(volume)
        with Announcer(FileOutput(d, speed=50), EspeakSpeech(), Phrases(), volume=volume) as announcer:
            announcer.announce(call(1))
            assert announcer.wait_idle(30)
        levels[volume] = rms(d / FileOutput.read_log(d)[0]["file"])
    assert 0.2 <= levels[0.25] / levels[1.0] <= 0.3


def test_queue_speaks_in_seq_order_one_at_a_time_even_when_calls_arrive_out_of_order(tmp_path):
    out = FileOutput(tmp_path, speed=20)
    with Announcer(out, EspeakSpeech(), Phrases()) as announcer:
        announcer.announce(call(1, "A001"))
        time.sleep(0.05)  # the first is playing; the rest queue behind it
        for seq in (5, 3, 4, 2):
            announcer.announce(call(seq, f"A00{seq}"))
        assert announcer.wait_idle(60)
    log = FileOutput.read_log(tmp_path)
    assert [e["seq"] for e in log] == [1, 2, 3, 4, 5]
    for before, after in zip(log, log[1:], strict=False):
        assert before["end"] <= after["start"], f"{before['ticket']} overlaps {after['ticket']}"


def test_a_recall_opens_with_its_own_chime_then_says_ponownie(tmp_path):
    chime = wav_frames(synthesise_chime())
    recall_chime = load_chime(RECALL_WAV)
    assert recall_chime != chime
    with Announcer(
        FileOutput(tmp_path, speed=50), EspeakSpeech(), Phrases(), chime=chime, recall_chime=recall_chime
    ) as a:
        first, again = a.render(call(1, "A001")), a.render(call(2, "A001", recall=True))
    assert wav_frames(first)[: len(chime)] == chime
    assert wav_frames(again)[: len(recall_chime)] == recall_chime, "a recall must not sound like a call"
    assert wav_duration(again) > wav_duration(first), "'Ponownie' is said too"


def test_the_shipped_recall_chime_is_what_the_documented_sox_command_makes(tmp_path):
    out = tmp_path / "recall.wav"
    subprocess.run(["sh", str(RECALL_WAV.parent / "make-recall-chime.sh"), str(out)], check=True)
    assert out.read_bytes() == RECALL_WAV.read_bytes()
    assert 1.0 <= wav_duration(out.read_bytes()) <= 1.5


def test_a_bilingual_call_and_recall_take_about_nine_seconds(tmp_path):
    """The measured length of what the hall hears (docs/display.md, "When the hall is busy")."""
    lengths = {}
    with Announcer(
        FileOutput(tmp_path, speed=50), EspeakSpeech(), Phrases(("pl", "en")), recall_chime=load_chime(RECALL_WAV)
    ) as a:
        for recall in (False, True):
            lengths[recall] = wav_duration(a.render(call(1, "A023", "Stanowisko 4", recall=recall)))
    print(f"bilingual call {lengths[False]:.2f} s, recall {lengths[True]:.2f} s")
    assert 5.0 <= lengths[False] <= 10.0 and 5.0 <= lengths[True] <= 11.0


def test_chime_in_another_format_is_converted(tmp_path):
    src = tmp_path / "bell.wav"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(src), "synth", "0.5", "sine", "660"], check=True)
    frames = load_chime(src)
    assert abs(len(frames) / 2 / RATE - 0.5) < 0.01


def test_missing_or_broken_chime_is_a_clear_error(tmp_path):
    with pytest.raises(AudioError, match="cannot read chime"):
        load_chime(tmp_path / "none.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    with pytest.raises(AudioError, match="is not a WAV file"):
        load_chime(bad)
    broken = tmp_path / "broken.wav"  # a WAV header, then garbage: sox cannot make sense of it
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(AudioError, match="cannot convert chime"):
        load_chime(broken)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(wav_bytes(b""))
    with pytest.raises(AudioError, match="has no sound"):
        load_chime(empty)


def test_volume_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(AudioError, match="volume"):
        Announcer(FileOutput(tmp_path), EspeakSpeech(), Phrases(), volume=1.5)


@pytest.mark.skipif(shutil.which("aplay") is None, reason="aplay (alsa-utils) is not installed")
def test_alsa_output_plays_a_whole_announcement_through_aplay(tmp_path):
    wav = synthesise_chime()
    assert wav_duration(wav) > 1.0
    AlsaOutput("null").play(wav)  # ALSA's null device: real aplay, real WAV parsing, no speaker needed
    with pytest.raises(AudioError, match="aplay failed"):
        AlsaOutput("no_such_card").play(wav)


# ---------------------------------------------------------------------------- a busy hall


def test_a_busy_hall_hears_calls_in_call_order_and_none_is_lost():
    q = AnnouncementQueue()
    for seq in (5, 3, 4, 2, 6, 1):
        assert q.push(call(seq, f"A00{seq}"))
    assert [q.pop().seq for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    assert len(q) == 0


def test_a_recall_of_a_ticket_still_waiting_is_merged_into_it_keeping_its_place():
    q = AnnouncementQueue()
    q.push(call(1, "A001"))
    q.push(call(2, "A002"))
    q.push(call(3, "A003"))
    assert not q.push(call(4, "A002", recall=True)), "merged: A002 is said once"
    assert [(a.seq, a.ticket, a.recall) for a in q] == [(1, "A001", False), (2, "A002", False), (3, "A003", False)]


def test_a_ticket_called_again_elsewhere_while_waiting_is_said_once_with_the_new_counter():
    q = AnnouncementQueue()
    q.push(call(1, "A001", "Stanowisko 4"))
    q.push(Announcement(seq=2, ticket="A001", counter="2", counter_name="Stanowisko 2"))
    [a] = list(q)
    assert (a.seq, a.counter_name) == (1, "Stanowisko 2"), "where to go now, at its first place in the queue"


def test_a_recall_of_the_ticket_being_said_now_is_said_again_after_it():
    q = AnnouncementQueue()
    q.push(call(1, "A001"))
    q.push(call(2, "A002"))
    saying = q.pop()  # A001 is being said
    assert q.push(call(3, "A001", recall=True)), "the clerk asked again after the call started: say it again"
    assert saying.ticket == "A001"
    assert [(a.ticket, a.recall) for a in q] == [("A002", False), ("A001", True)]


def test_a_recall_arriving_during_the_call_is_spoken_after_it_with_its_chime(tmp_path):
    """The real announcer: the recall comes while the first call is playing."""
    out = FileOutput(tmp_path, speed=4)
    with Announcer(out, EspeakSpeech(), Phrases(), recall_chime=load_chime(RECALL_WAV)) as announcer:
        announcer.announce(call(1, "A001"))
        # FileOutput writes the file as it starts "playing" it.
        wait_for((tmp_path / "0001-A001.wav").exists, 30, "the first call being said")
        announcer.announce(call(2, "A001", recall=True))
        assert announcer.wait_idle(60)
    assert [(e["ticket"], e["recall"]) for e in FileOutput.read_log(tmp_path)] == [("A001", False), ("A001", True)]
