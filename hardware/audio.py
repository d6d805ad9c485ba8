"""Sound for the hall display: a chime, then a spoken call, one announcement at a time.

Why this shape: like gpiozero, the device side is a small object with a real implementation
(:class:`AlsaOutput`, which plays through ``aplay`` on the Pi's ALSA card) and one that tests
and installers can read (:class:`FileOutput`, which writes every announcement as a WAV file
and logs when it "played"). The :class:`Announcer` on top owns the queue: calls are spoken in
call order (``seq``), one after another, none dropped and none overlapping, on a thread of
its own so the screen never waits for the speaker.

Everything is offline: speech comes from espeak-ng (``-v pl`` Polish, ``-v en`` English, any
voice espeak-ng has), the chime is synthesised here (and shipped as ``display/sounds/chime.wav``).
The words are not here: the Announcer is handed a :class:`Phrases` (the hall display's comes
from its gettext catalogue, ``display/speech.py``), so no language is written in this layer.
"""

from __future__ import annotations

import array
import io
import json
import logging
import math
import re
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

RATE = 22050
"""espeak-ng's native sample rate; every clip is brought to mono 16-bit at this rate."""

GAP_SECONDS = 0.25
"""Silence between the chime and the speech, and between two languages."""


class AudioError(RuntimeError):
    """Audio could not be produced or played (missing program, unreadable file...)."""


# --------------------------------------------------------------------------- WAV helpers


def wav_bytes(frames: bytes, rate: int = RATE) -> bytes:
    """Mono 16-bit PCM ``frames`` wrapped in a WAV header."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def wav_frames(data: bytes) -> bytes:
    """The PCM frames of a mono 16-bit WAV at :data:`RATE` (what espeak-ng and our chime produce)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
                raise AudioError(
                    f"expected mono 16-bit {RATE} Hz audio, got {w.getnchannels()} ch, "
                    f"{8 * w.getsampwidth()}-bit, {w.getframerate()} Hz"
                )
            return w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a WAV file: {exc}") from exc


def wav_duration(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


def scale(frames: bytes, volume: float) -> bytes:
    """Software volume: the Pi's HDMI/jack mixer names differ per model, samples do not."""
    if volume >= 0.999:
        return frames
    samples = array.array("h", frames)
    for i, s in enumerate(samples):
        samples[i] = int(s * volume)
    return samples.tobytes()


def synthesise_chime(rate: int = RATE) -> bytes:
    """A two-note "ding-dong" (E6 then C6 with a soft octave), as a WAV.

    Made here rather than downloaded so its origin and licence are ours, and so that a
    missing sound file can always be rebuilt (``python -m hardware.audio chime FILE``).
    """
    notes = [(1318.5, 0.0), (1046.5, 0.45)]
    length = 1.45
    n = int(rate * length)
    out = array.array("h", [0] * n)
    for freq, start in notes:
        first = int(start * rate)
        for i in range(n - first):
            t = i / rate
            attack = min(1.0, t / 0.008)
            envelope = attack * math.exp(-t * 3.2)
            value = math.sin(2 * math.pi * freq * t) + 0.35 * math.sin(2 * math.pi * freq * 2 * t)
            out[first + i] = max(-32767, min(32767, out[first + i] + int(9000 * envelope * value)))
    return wav_bytes(out.tobytes(), rate)


def load_chime(path: str | Path | None) -> bytes:
    """The chime's frames: the given WAV (converted with sox if its format differs) or ours.

    Raises :class:`AudioError` saying what is wrong with the file (missing, not a WAV, a
    format that cannot be converted, sox missing), so that ``numerek-display --check`` can
    name it before the display runs, and the running display can fall back to our chime.
    """
    if not path:
        return wav_frames(synthesise_chime())
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot read chime {p}: {exc.strerror}") from exc
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"chime {p} is not a WAV file")
    try:
        frames = wav_frames(data)
    except AudioError as exc:
        frames = _convert_chime(p, str(exc))
    if not frames:
        raise AudioError(f"chime {p} has no sound in it")
    return frames


def _convert_chime(p: Path, why: str) -> bytes:
    """``p`` brought to mono 16-bit :data:`RATE` by sox; ``why`` says why it had to be."""
    sox = shutil.which("sox")
    if not sox:
        raise AudioError(f"chime {p}: {why}, and sox is not installed to convert it (apt-get install sox)")
    try:
        done = subprocess.run(
            [sox, str(p), "-t", "wav", "-r", str(RATE), "-c", "1", "-b", "16", "-"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(f"cannot convert chime {p} with sox: {exc}") from exc
    if done.returncode != 0:
        raise AudioError(f"cannot convert chime {p}: {done.stderr.decode(errors='replace').strip()}")
    return wav_frames(done.stdout)


# --------------------------------------------------------------------------- words


@dataclass(frozen=True)
class Announcement:
    """One call to be spoken. ``seq`` orders announcements (the server's call sequence)."""

    seq: int
    ticket: str
    counter: str
    counter_name: str
    recall: bool = False


_TICKET = re.compile(r"^([A-Z]{1,2})0*([0-9]+)$")


LETTER_NAMES_EN = dict(
    zip(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "'eI b'i: s'i: d'i: 'i: 'Ef dZ'i: 'eItS 'aI dZ'eI k'eI 'El 'Em 'En 'oU p'i: kj'u: 'A@ 'Es t'i: j'u: "
        "v'i: d'Vb@Lj,u: 'Eks w'aI z'Ed".split(),
        strict=True,
    )
)
"""The English names of the letters in espeak-ng's phoneme notation (what ``espeak-ng -v en -x``
prints for each letter said alone). In a sentence espeak-ng reads a lone "A" as the article
("uh", ``a#``) and "I" as the pronoun; given as phonemes (``[['eI]]``) a ticket's letter is
always its name, stressed, as a resident reads it on the ticket."""


_PHONEMES = re.compile(r"\[\[([^\]]*)\]\]")
_LETTER_OF = {v: k for k, v in LETTER_NAMES_EN.items()}


def readable(text: str) -> str:
    """An announcement's text as a person reads it: the letters' phonemes written as letters
    ("Number [['eI]] 23" -> "Number A 23"), for logs and ``--test-audio``."""
    return _PHONEMES.sub(lambda m: _LETTER_OF.get(m.group(1), m.group(1)), text)


def spoken_ticket(ticket: str, lang: str = "pl") -> str:
    """ "A023" -> "A 23": the prefix letter(s) spelled, the number without leading zeros: the
    ticket as espeak-ng must be given it to read it as a resident does, in any voice.

    In English each letter is written as espeak-ng phonemes of its name ("[['eI]] 23"), see
    :data:`LETTER_NAMES_EN`; Polish espeak-ng already says a lone letter by its name ("a", "pe")."""
    m = _TICKET.match(ticket)
    if not m:
        return ticket
    letters, number = m.groups()
    if lang == "en":
        return " ".join([*(f"[[{LETTER_NAMES_EN[c]}]]" for c in letters), str(int(number))])
    return f"{' '.join(letters)} {int(number)}"


class Phrases(Protocol):
    """What to say for a call: ``(language, text)`` pairs, spoken in that order after the chime.

    The words are the caller's (the hall display's catalogue, ``display/speech.py``): this
    layer knows no language, only how to make espeak-ng read a ticket (:func:`spoken_ticket`)."""

    def __call__(self, a: Announcement, /) -> Sequence[tuple[str, str]]: ...


class Speech(Protocol):
    def speak(self, text: str, lang: str) -> bytes:
        """Mono 16-bit :data:`RATE` PCM frames of ``text`` spoken in ``lang``."""
        ...


class EspeakSpeech:
    """Offline speech through the espeak-ng program; recent phrases are cached."""

    VOICES = {"pl": "pl", "en": "en", "uk": "uk"}

    def __init__(self, words_per_minute: int = 140, voices: Mapping[str, str] | None = None, cache: int = 64):
        exe = shutil.which("espeak-ng")
        if not exe:
            raise AudioError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.exe: str = exe
        self.wpm = words_per_minute
        self.voices = {**self.VOICES, **(voices or {})}
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_size = cache

    def speak(self, text: str, lang: str) -> bytes:
        key = (text, lang)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        voice = self.voices.get(lang, lang)
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            done = subprocess.run(
                [self.exe, "-v", voice, "-s", str(self.wpm), "-w", tmp.name, text], capture_output=True, timeout=30
            )
            if done.returncode != 0:
                raise AudioError(f"espeak-ng failed for voice {voice!r}: {done.stderr.decode(errors='replace')}")
            frames = wav_frames(Path(tmp.name).read_bytes())
        self._cache[key] = frames
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return frames


# --------------------------------------------------------------------------- outputs


class AudioOutput(Protocol):
    def play(self, wav: bytes, meta: Mapping[str, object] | None = None) -> None:
        """Play one WAV and return when it has finished."""
        ...

    def close(self) -> None: ...


class AlsaOutput:
    """Plays through ALSA with ``aplay`` (alsa-utils, present on Raspberry Pi OS Lite).

    ``device`` is an ALSA PCM name ("default", "hw:0,0", "plughw:1,0" for a USB card;
    "null" discards the sound). The process is waited for, so announcements cannot overlap.
    """

    def __init__(self, device: str | None = None, timeout: float = 60.0) -> None:
        exe = shutil.which("aplay")
        if not exe:
            raise AudioError("aplay is not installed (apt-get install alsa-utils)")
        self.exe: str = exe
        self.device = device or None
        self.timeout = timeout

    def play(self, wav: bytes, meta: Mapping[str, object] | None = None) -> None:
        cmd = [self.exe, "-q", *(["-D", self.device] if self.device else []), "-"]
        try:
            done = subprocess.run(cmd, input=wav, capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise AudioError(f"aplay did not finish within {self.timeout}s") from exc
        if done.returncode != 0:
            raise AudioError(f"aplay failed: {done.stderr.decode(errors='replace').strip()}")

    def close(self) -> None:
        pass


class FileOutput:
    """Writes each announcement to ``directory`` as a WAV and logs start/end in ``announcements.jsonl``.

    It takes as long as the sound would (divided by ``speed``), so the timing of the queue is
    the real one: tests and installers read the log to see what was said, in which order,
    and that no two announcements overlapped.
    """

    LOG = "announcements.jsonl"

    def __init__(self, directory: str | Path, speed: float = 1.0) -> None:
        if speed <= 0:
            raise AudioError("playback speed must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.speed = speed
        self._count = len(list(self.directory.glob("*.wav")))
        self._lock = threading.Lock()

    def play(self, wav: bytes, meta: Mapping[str, object] | None = None) -> None:
        with self._lock:
            self._count += 1
            n = self._count
        label = str((meta or {}).get("ticket", "sound"))
        path = self.directory / f"{n:04d}-{label}.wav"
        path.write_bytes(wav)
        duration = wav_duration(wav)
        start = time.time()
        time.sleep(duration / self.speed)
        end = time.time()
        entry = {"n": n, **(meta or {}), "file": path.name, "duration": round(duration, 3), "start": start, "end": end}
        with open(self.directory / self.LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def close(self) -> None:
        pass

    @classmethod
    def read_log(cls, directory: str | Path) -> list[dict]:
        p = Path(directory) / cls.LOG
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- the queue


class AnnouncementQueue:
    """What waits to be said while the hall is busy: the rule as plain code, no thread, no sound.

    - **Order**: the server's call order (``seq``), whatever order the calls arrived in.
    - **None lost**: every call is kept until it is said; there is no limit and no timeout
      (a burst of ten calls is ten announcements, ~4 s each with two languages).
    - **A recall merged**: a call or recall of a ticket that is still *waiting* here (not yet
      being said) does not add a second announcement: the waiting one keeps its place, so the
      resident hears the number once, as soon as it would have been said, with the newest
      counter (a ticket called again elsewhere goes where it is called now). It stays a first
      call if the first call was not said yet: for the hall it is the first time. A recall of
      the ticket being said *now* is queued and said after it ("ponownie"): the clerk asked again.
    """

    def __init__(self) -> None:
        self._waiting: list[Announcement] = []  # in seq order

    def push(self, a: Announcement) -> bool:
        """Queue ``a``; False when it was merged into the same ticket's waiting announcement."""
        for i, queued in enumerate(self._waiting):
            if queued.ticket == a.ticket:
                self._waiting[i] = Announcement(queued.seq, a.ticket, a.counter, a.counter_name, queued.recall)
                return False
        self._waiting.append(a)
        self._waiting.sort(key=lambda x: x.seq)
        return True

    def pop(self) -> Announcement:
        """The next to say (IndexError when none waits)."""
        return self._waiting.pop(0)

    def clear(self) -> None:
        self._waiting.clear()

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[Announcement]:
        return iter(list(self._waiting))


class Announcer:
    """Speaks calls one after another in ``seq`` order on its own thread.

    ``announce`` never blocks and never drops: a burst of ten calls in one second becomes ten
    announcements back to back. A failure to speak one call is logged and the next goes on.
    """

    def __init__(
        self,
        output: AudioOutput,
        speech: Speech,
        phrases: Phrases,
        volume: float = 1.0,
        chime: bytes | None = None,
        recall_chime: bytes | None = None,
    ) -> None:
        if not 0.0 <= volume <= 1.0:
            raise AudioError("volume must be between 0.0 and 1.0")
        self.output = output
        self.speech = speech
        self.phrases = phrases
        self.volume = volume
        self.chime = chime if chime is not None else wav_frames(synthesise_chime())
        self.recall_chime = recall_chime if recall_chime is not None else self.chime
        """Opens a recall instead of the chime: three quick high notes (display/sounds/recall.wav)."""
        self._queue = AnnouncementQueue()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._playing = threading.Lock()  # the queue's thread and play_now never overlap
        self._thread = threading.Thread(target=self._run, name="announcer", daemon=True)
        self._thread.start()

    def announce(self, a: Announcement) -> None:
        with self._cond:
            if self._closed:
                return
            if not self._queue.push(a):
                log.info("call %s (seq %d) merged into its announcement still waiting", a.ticket, a.seq)
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once nothing is queued or playing (False on timeout)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def render(self, a: Announcement) -> bytes:
        """The whole announcement as one WAV: chime, then each language in turn."""
        parts = [self.recall_chime if a.recall else self.chime]
        for lang, text in self.phrases(a):
            parts += [silence(GAP_SECONDS), self.speech.speak(text, lang)]
        parts.append(silence(0.2))
        return wav_bytes(scale(b"".join(parts), self.volume))

    def _say(self, a: Announcement) -> None:
        meta = {"seq": a.seq, "ticket": a.ticket, "counter": a.counter, "recall": a.recall}
        with self._playing:
            self.output.play(self.render(a), meta)

    def play_now(self, a: Announcement) -> None:
        """Say ``a`` at once and return when it has been played; raises :class:`AudioError`.

        For a one-off check (``numerek-display --test-audio``): unlike :meth:`announce`,
        which logs a failure and goes on with the next call, the caller learns that the
        speaker could not play, so an installer's "can you hear it?" cannot report success
        in silence.
        """
        try:
            self._say(a)
        except OSError as exc:  # e.g. the player vanished between start-up and now
            raise AudioError(f"cannot play: {exc}") from exc

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if self._closed and not self._queue:
                    return
                a = self._queue.pop()
                self._busy = True
            try:
                self._say(a)
            except Exception:  # one bad call must not silence the hall for the rest of the day
                log.exception("could not announce %s (seq %s)", a.ticket, a.seq)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def close(self, drain: bool = False, timeout: float = 5.0) -> None:
        """Stop; with ``drain`` first finish what is queued."""
        if drain:
            self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        self.output.close()

    def __enter__(self) -> Announcer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hardware.audio chime FILE`` writes the synthesised chime to FILE."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "chime":
        print("usage: python -m hardware.audio chime FILE", file=sys.stderr)
        return 2
    Path(args[1]).write_bytes(synthesise_chime())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
