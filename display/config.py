"""The hall display's own config file (TOML), validated with pydantic.

One file per display: which zone it shows, how to reach the broker, what the screen and the
speaker do. A mistake is reported with the path of the bad field before anything starts,
so an installer sees "audio.volume: ..." on the console instead of a silent waiting room.
The documented example is ``display/examples/display.toml``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from display.texts import BOARD_LANGUAGES, CATALOGUE
from protocol import config
from protocol.config import ConfigError as ConfigError  # re-exported: the one error of every role
from protocol.mqtt import BrokerConfig
from protocol.topics import ID_PATTERN, device_name

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHIME = PACKAGE_DIR / "sounds" / "chime.wav"
DEFAULT_RECALL_CHIME = PACKAGE_DIR / "sounds" / "recall.wav"
"""Three rising notes (display/sounds/make-recall-chime.sh makes it with sox)."""
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

log = logging.getLogger("numerek.display")

Id = Annotated[str, Field(pattern=ID_PATTERN)]


if TYPE_CHECKING:
    from hardware.audio import Announcer


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _board_languages(values: list[str]) -> list[str]:
    out = config.languages(values, CATALOGUE.languages(), "display/locale", most=2)
    if out[0] != "pl":
        raise ValueError(f'the board shows Polish first, the office\'s language: start with "pl", not {out[0]!r}')
    return out


class DisplaySection(_Strict):
    id: Id = "hall-1"
    """Device id; availability is published on ``<base>/device/display-<id>/availability``."""
    zone: Id = "hall"
    office_name: Annotated[str, Field(max_length=80)] = ""
    """Shown in the header; empty means the office name the server announces."""
    logo: str = ""
    """Optional path to a PNG/JPEG logo shown left of the office name."""
    last_calls: Annotated[int, Field(ge=1, le=9)] = 6
    """At most this many previous calls beside the newest (the board carries 10). Rows keep the
    10-metre size, so a screen shows the newest that fit: 5 at 16:9 landscape, 6 in portrait."""
    layout: Literal["calls", "counters"] = "calls"
    """``calls``: the newest call large and a table of recent calls. ``counters``: a column per
    counter with the ticket it called last (the layout banks use)."""
    counters: Annotated[list[Id], Field(max_length=8)] = Field(default_factory=list)
    """For ``layout = "counters"``: the counters' ids, in column order; empty: every counter
    the board has called, in natural order."""
    other_zones: Annotated[list[Id], Field(max_length=8)] = Field(default_factory=list)
    """Zones whose calls are listed at the side with where to go ("P004 → pokój 12, I piętro"),
    never announced here: a resident in the wrong hall still learns where to go."""
    languages: Annotated[list[str], AfterValidator(_board_languages)] = Field(
        default_factory=lambda: list(BOARD_LANGUAGES), min_length=1
    )
    """The board's captions, in this order ("Wywołany numer · Now calling"): Polish first,
    then at most one more language of ``display/locale`` (``["pl", "uk"]`` where the hall's
    visitors read Ukrainian rather than English). Two lines is what the headings have room for."""
    highlight_seconds: Annotated[float, Field(ge=0, le=60)] = 8.0
    info_text: Annotated[str, Field(max_length=1000)] = ""
    """The scrolling line at the bottom; empty hides it."""
    info_speed: Annotated[float, Field(gt=0, le=10)] = 1.0
    """Scrolling speed; 1.0 crosses a 1920-pixel screen in about 12 s."""
    info_fps: Annotated[int, Field(ge=0, le=60)] = 15
    """Frames a second of the scrolling, when the info line is too long for the screen (a line
    that fits stands still). Each frame redraws the whole window: 15 is smooth enough to read
    and half the cost of 30; 0 shows the line a part at a time, changing every 8 s, for
    almost no CPU."""


class ScreenSection(_Strict):
    fullscreen: bool = True
    """On the Pi: fullscreen at the TV's resolution. Off: a window of width x height."""
    width: Annotated[int, Field(ge=320, le=7680)] = 1920
    height: Annotated[int, Field(ge=240, le=4320)] = 1080
    font: str = str(DEJAVU / "DejaVuSans.ttf")
    font_bold: str = str(DEJAVU / "DejaVuSans-Bold.ttf")
    show_cursor: bool = False
    rotation: Literal[0, 90, 180, 270] = 0
    """A TV hung in portrait: 90 or 270 turns the picture (Kivy's graphics.rotation); the
    layout follows the window's shape (taller than wide: portrait)."""


def _polish_only() -> list[str]:
    return ["pl"]


def _spoken_languages(values: list[str]) -> list[str]:
    return config.languages(values, CATALOGUE.languages(), "display/locale", most=3)


class AudioSection(_Strict):
    enabled: bool = True
    volume: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    languages: Annotated[list[str], AfterValidator(_spoken_languages)] = Field(
        default_factory=_polish_only, min_length=1
    )
    """Spoken in this order after the chime; Polish first is the law of the land. Any language
    of ``display/locale`` (pl, en, uk; a translator's PO file adds one: ``say_call``...)."""
    chime: str = str(DEFAULT_CHIME)
    recall_chime: str = str(DEFAULT_RECALL_CHIME)
    """Opens a recall ("Ponownie numer ..."), so it is not heard as a new call; any WAV."""
    words_per_minute: Annotated[int, Field(ge=80, le=300)] = 140
    counter_word_en: Annotated[str, Field(min_length=1, max_length=20)] = "counter"
    output: Literal["alsa", "files"] = "alsa"
    """``alsa`` plays with aplay; ``files`` writes each announcement to ``record_dir`` (tests, checks)."""
    device: str = ""
    """ALSA device, e.g. "default", "hw:0,0", "plughw:1,0"; empty is ALSA's default."""
    record_dir: str = ""
    playback_speed: Annotated[float, Field(gt=0, le=100)] = 1.0
    """Only for ``files``: how much faster than real time a recorded announcement "plays"."""

    @model_validator(mode="after")
    def _files_need_a_dir(self) -> AudioSection:
        if self.output == "files" and not self.record_dir:
            raise ValueError("output = 'files' needs record_dir")
        return self


class DisplayConfig(_Strict):
    display: DisplaySection = Field(default_factory=DisplaySection)
    mqtt: BrokerConfig = Field(default_factory=BrokerConfig)
    screen: ScreenSection = Field(default_factory=ScreenSection)
    audio: AudioSection = Field(default_factory=AudioSection)

    @property
    def device_id(self) -> str:
        return device_name("display", self.display.id)


def parse_config(text: str, base_dir: Path | None = None, source: str | Path = "display config") -> DisplayConfig:
    """A display config from TOML text; paths in it are relative to ``base_dir`` (the file's folder)."""
    return _finish(config.validate(DisplayConfig, config.parse_toml(text, source), source), base_dir, source)


def load_config(path: str | Path) -> DisplayConfig:
    """Read and validate a display config (:class:`ConfigError` names the file and each field)."""
    p = Path(path)
    return _finish(config.load(p, DisplayConfig), p.resolve().parent, p)


def _finish(cfg: DisplayConfig, base_dir: Path | None, source: str | Path) -> DisplayConfig:
    """Paths made relative to the config file's folder, and the files they name checked."""
    if base_dir is not None:
        anchor = base_dir / "display.toml"
        cfg = cfg.model_copy(
            update={
                "display": cfg.display.model_copy(update={"logo": config.relative_to(anchor, cfg.display.logo)}),
                "audio": cfg.audio.model_copy(
                    update={
                        "chime": config.relative_to(anchor, cfg.audio.chime),
                        "recall_chime": config.relative_to(anchor, cfg.audio.recall_chime),
                        "record_dir": config.relative_to(anchor, cfg.audio.record_dir),
                    }
                ),
            }
        )
    for label, path in (("screen.font", cfg.screen.font), ("screen.font_bold", cfg.screen.font_bold)):
        if not Path(path).is_file():
            raise config.problem(source, label, f"font file {path} not found (apt-get install fonts-dejavu-core)")
    if cfg.display.logo and not Path(cfg.display.logo).is_file():
        raise config.problem(source, "display.logo", f"image file {cfg.display.logo} not found")
    return cfg


def check_audio(a: AudioSection, source: str | Path = "display config") -> None:
    """What ``numerek-display --check`` adds to parsing: the chime must be usable here.

    Not part of :func:`parse_config` on purpose: a chime that cannot be used at run time
    must not keep the display from starting (it falls back to the built-in chime, see
    :func:`make_announcer`), but the installer running ``--check`` wants to hear about it,
    with the field named. Raises ConfigError.
    """
    if not a.enabled:
        return
    from hardware.audio import AudioError, load_chime

    for label, path in (("audio.chime", a.chime), ("audio.recall_chime", a.recall_chime)):
        if not path:
            continue
        try:
            load_chime(path)
        except AudioError as exc:
            raise config.problem(source, label, str(exc)) from exc


def make_announcer(a: AudioSection) -> Announcer:
    """The announcer this display's ``[audio]`` section describes (raises AudioError).

    One place for the app and ``numerek-display --test-audio``, so the installer's sound
    check uses exactly what the running display will. A chime that cannot be used (missing,
    not a WAV, no sox to convert it) is logged and replaced by the built-in one: a wrong
    chime file must never silence the speech that calls people to the counters.
    """
    from display.speech import Phrases
    from hardware.audio import AlsaOutput, Announcer, AudioError, EspeakSpeech, FileOutput, load_chime

    speech = EspeakSpeech(a.words_per_minute)
    output = FileOutput(a.record_dir, a.playback_speed) if a.output == "files" else AlsaOutput(a.device)
    try:
        chime = load_chime(a.chime)
    except AudioError as exc:
        log.warning("audio.chime: %s; using the built-in chime", exc)
        chime = load_chime(None)
    try:
        recall_chime = load_chime(a.recall_chime or DEFAULT_RECALL_CHIME)
    except AudioError as exc:
        log.warning("audio.recall_chime: %s; using the shipped recall chime", exc)
        recall_chime = load_chime(DEFAULT_RECALL_CHIME)
    return Announcer(
        output,
        speech,
        Phrases(tuple(a.languages), a.counter_word_en),
        volume=a.volume,
        chime=chime,
        recall_chime=recall_chime,
    )
