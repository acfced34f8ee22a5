"""What a worker and site staff see and hear at the gate: status LED, buzzer, voice.

Feedback table (this is the README's):

| signal | situation | LED | beep | voice |
| --- | --- | --- | --- | --- |
| `entry` | entry recorded | green | short | 入場を記録しました |
| `exit` | exit recorded | green, double blink | short | 退場を記録しました |
| `duplicate` | same card again within the debounce window | green, brief | – | 記録済みです |
| `unknown_card` | card not linked to a worker | red | long | カードが登録されていません |
| `not_on_roster` | not on the site roster ¹ | amber | – | 作業員名簿に登録されていません。職長に連絡してください |
| `incomplete` | on the roster without 職種・立場 ¹ | amber | – | (as `not_on_roster`) |
| `unreadable_card` | random-ID card ² | red | – | このカードは使えません。CCUSカードをタッチしてください |
| `tap_not_saved` | disk full, not saved | red, fast blink | long | 記録できませんでした。現場事務所に連絡してください |
| `recorded_unconfigured` | saved, not judged: no config ⁴ | green/amber ×3 | short | 記録しました… ⁴ |
| `recorded_unregistered` | saved, not judged: unknown gate ⁴ | green/amber ×3 | short | 記録しました… ⁴ |

¹ the tap is still recorded and sent. ² an ISO 14443 card with a random UID (Type B PUPI, Type A 0x08…):
it cannot identify a worker, so nothing is recorded. ⁴ recorded, not judged: the gate has no config from
the server yet (`recorded_unconfigured`), or the server does not know the gate or the gate is on no site
(`recorded_unregistered`: the server says so with a config without a site when the gate reports in, and
with its `held` answers). The tap is saved and sent; the server keeps
it and makes it a record as soon as the 元請 registers the gate on its site, so the worker is told it was
recorded, and the installer hears that the gate still needs the server's side. green/amber ×3: the two
alternate 0.3 s each, three times. The sentences in full: 記録しました。ゲートの設定を待っています /
記録しました。このゲートは未登録です.

Between taps the LED shows the most important idle state (precedence top to bottom):

| idle state | situation | LED | voice |
| --- | --- | --- | --- |
| `reader_failed` | reader missing or failed | red, fast blink | カードリーダーを確認してください ³ |
| `disk_full` | SD card full | red, steady | – |
| `clock_unsynced` | clock not synchronised (taps flagged) | amber and red alternating | – |
| `offline` | broker unreachable, taps buffered | amber, slow blink | – |
| `unregistered` | server holds the taps: gate not registered or on no site | amber/green alternating ⁵ | ⁶ |
| `unconfigured` | no config from the server yet: cards not judged | amber, fast blink | ⁶ |
| `ready` | ready for a card | off | – |

³ at once, then every 60 s while the reader is missing. ⁵ 0.25 s each. ⁶ said once when the state begins (at
start, or when the server's answer shows it), and again in the tap's own sentence on every tap:
`unregistered` このゲートはサーバーに登録されていません。元請に登録を依頼してください; `unconfigured`
このゲートはまだ設定されていません。タッチは記録されます.

Timings: a tap's steady colour holds 1.5 s (green) or 2 s (red, amber); brief = 0.3 s; double blink =
0.3 on, 0.2 off, twice; fast blink = 0.15 on, 0.15 off (3 s after a failed save, for ever when idle); slow
blink = 1 s on, 1 s off; alternating = 0.5 s each. Beeps: short 0.1 s, long 0.8 s, double 0.1 on, 0.1 off,
twice (an active buzzer through gpiozero's `Buzzer`: on/off, no tone).

READY is *off*, not steady green: a steady green at rest would make "entry recorded" look like nothing
happened, and a dark gate with a lit LED meaning "something is wrong" is what site staff learn fastest.
A tap's pattern starts at once and interrupts whatever was showing (a previous tap's pattern, beep and
voice included); when it ends the idle pattern resumes. `identify` blinks every lamp fast for 5 s with a
double beep and says the gate's name; `selftest` lights each lamp in turn (0.5 s each), beeps double and
says スピーカーのテストです.

`genba-gate selftest` ends by showing its verdict (firmware/selftest.py): the first failure in the order an
installer fixes them, or success. A failure is a *blink code*: the colour blinks N times (0.3 s on, 0.3 s
off), stays dark 1.5 s, and repeats until the hold ends (20 s on a gate). N is the verdict's place in the
fix-first order; red is a part of the gate itself, amber its connection to the server:

| verdict | LED | beep | voice | what failed |
| --- | --- | --- | --- | --- |
| `passed` | green, steady 3 s | double | 点検が完了しました。使用できます | nothing |
| `reader` | red ×1 | long | カードリーダーが見つかりません。接続を確認してください | reader does not open |
| `network` | amber ×2 | long | サーバーにつながりません。ネットワークを確認してください | ¹ |
| `tls` | amber ×3 | long | 暗号化の設定が合っていません。設定を確認してください | ² |
| `broker` | amber ×4 | long | サーバーに接続を拒否されました。ゲートの登録を確認してください | ³ |
| `clock` | amber ×5 | long | 時刻が同期していません。インターネット接続を確認してください | not NTP-synced |
| `disk` | red ×6 | long | SDカードに書き込めません。SDカードを交換してください | ⁴ |
| `sound` | red ×7 | long | – (LED and beep only: the speaker is what failed) | ⁵ |
| `pins` | red ×8 | long | ゲートの部品が使えません。配線と設定を確認してください | ⁶ |

¹ the broker's host does not resolve, or no TCP connection to host:port. ² the broker's certificate is not
trusted by ca_file (or names another host), mqtts:// to a plain port, or mqtt:// to a TLS port. ³ the broker
answered the login with a refusal: bad username or password, not authorised. ⁴ data_dir cannot be written,
or has under 50 MB free. ⁵ no sound device, no player (aplay not installed), or the player failed on the test
phrase. ⁶ the pin library does not load (not a Pi, no lgpio / RPi.GPIO) or a pin of the LED, buzzer, motion
sensor or direction button cannot be used (busy, no permission): shown by whatever still works (the LED
alone, or only the sentence). `genba-gate run` shows the same at start and exits with status 4, which
systemd/genba-gate.service does not restart.

`tls` comes before `broker` because the TLS handshake comes before the login: when TLS is wrong the
login cannot be tried, so the two never fail together. No blink code looks like a tap's or an idle
pattern: taps are steady or a single burst, idle blinks are even and endless, a code is a counted
group with a pause.

LED wiring, from `[pins]`, in this order of precedence:
1. `led_blue` set → one RGB LED on `led_red`/`led_green`/`led_blue` (amber = red + green; `led_amber` is
   ignored, so its default pin may be reused for blue);
2. else `led_amber` set → a three-lamp tower on `led_red`/`led_amber`/`led_green`;
3. else no status LED (logged). A wiring with `led_red` or `led_green` missing is a ConfigError.
Both wirings drive one gpiozero `RGBLED(pwm=False)`: on a tower its third channel is the amber lamp, so
every pattern (alternating colours included) runs in gpiozero's own blink thread (a blink code in its
source thread).

Events: every output is also one line to the EventSink (how `genba-gate run --simulate` prints what the
gate shows), in this format:

    led <colour> [<mode>]      colour: green | red | amber | all | off | amber/red
                               mode: blink-slow | blink-fast | double | brief | alternate | cycle |
                               code-<n> (a selftest blink code: n blinks, a pause, repeated);
                               no mode = steady
    beep short | long | double
    say <display text>         (emitted by Voice, when the voice is enabled)

A tap emits its lines in the order led, beep, say. Idle states emit a `led` line when the shown idle
pattern changes (not each time a tap's pattern ends and it resumes). A gate without a buzzer pin emits
no `beep` lines; one without LED pins no `led` lines.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gpiozero import RGBLED, Buzzer

from firmware.config import Pins
from firmware.errors import ConfigError

if TYPE_CHECKING:
    from gpiozero import Factory

    from firmware.voice import Voice

log = logging.getLogger("genba.gate.feedback")

EventSink = Callable[[str], None]

READER_REMINDER_S = 60.0


class Signal(StrEnum):
    """One per row of the feedback table; the value is also the voice phrase key."""

    ENTRY = "entry"
    EXIT = "exit"
    DUPLICATE = "duplicate"
    UNKNOWN_CARD = "unknown_card"
    NOT_ON_ROSTER = "not_on_roster"
    INCOMPLETE = "incomplete"  # on the roster without 職種/立場: shown like not_on_roster
    UNREADABLE_CARD = "unreadable_card"  # random-ID card
    TAP_NOT_SAVED = "tap_not_saved"  # disk full
    RECORDED_UNCONFIGURED = "recorded_unconfigured"  # saved, not judged: no config from the server yet
    RECORDED_UNREGISTERED = "recorded_unregistered"  # saved, not judged: the server does not know the gate


class Idle(StrEnum):
    """Background states; several may hold, the LED shows the first in IDLE_PRECEDENCE."""

    READY = "ready"
    OFFLINE = "offline"
    READER_FAILED = "reader_failed"
    CLOCK_UNSYNCED = "clock_unsynced"
    DISK_FULL = "disk_full"
    UNREGISTERED = "unregistered"  # the server holds this gate's taps: not registered, or on no site
    UNCONFIGURED = "unconfigured"  # no config from the server yet: cards are recorded, not judged


# OFFLINE before the two server-side states: while the broker is unreachable, that is the cause to fix.
IDLE_PRECEDENCE = (Idle.READER_FAILED, Idle.DISK_FULL, Idle.CLOCK_UNSYNCED, Idle.OFFLINE, Idle.UNREGISTERED,
                   Idle.UNCONFIGURED, Idle.READY)
# Idle states that say their sentence once when they begin to show (the voice phrase key).
IDLE_PHRASES: dict[Idle, str] = {Idle.UNREGISTERED: "unregistered", Idle.UNCONFIGURED: "unconfigured"}


class Verdict(StrEnum):
    """What `genba-gate selftest` shows at the end; the value is also the voice phrase key."""

    PASSED = "selftest_ok"
    READER = "selftest_reader"
    NETWORK = "selftest_network"
    TLS = "selftest_tls"
    BROKER = "selftest_broker"
    CLOCK = "selftest_clock"
    DISK = "selftest_disk"
    SOUND = "selftest_sound"
    PINS = "selftest_pins"  # LED, buzzer or sensor pins unusable (also `genba-gate run` at start, exit status 4)


#: Failures in the order an installer fixes them; the first one found is the one shown.
VERDICT_ORDER = (
    Verdict.READER, Verdict.NETWORK, Verdict.TLS, Verdict.BROKER, Verdict.CLOCK, Verdict.DISK, Verdict.SOUND,
    Verdict.PINS,
)

SLOW = (1.0, 1.0)
FAST = (0.15, 0.15)


@dataclass(frozen=True)
class Pattern:
    """An LED pattern. steady: `on_s` is how long it holds (None: until replaced); otherwise blink
    `n` times (None: for ever) between `colour` and `off_colour`."""

    colour: str
    mode: str = "steady"
    on_s: float | None = None
    off_s: float = 0.0
    n: int | None = None
    off_colour: str = "off"
    pause_s: float = 0.0  # mode "code": dark after each group of `n` blinks; the group repeats for ever

    @property
    def duration(self) -> float | None:
        if self.mode == "steady":
            return self.on_s
        if self.mode == "code" or self.n is None or self.on_s is None:
            return None
        return self.n * (self.on_s + self.off_s)

    @property
    def event(self) -> str:
        colour = self.colour if self.off_colour == "off" else f"{self.colour}/{self.off_colour}"
        if self.mode == "code":
            return f"led {colour} code-{self.n}"
        return f"led {colour}" if self.mode == "steady" else f"led {colour} {self.mode}"

    def frames(self) -> list[str]:
        """Mode "code": one group as colours, one per `on_s` step (on, off, on, …, then the pause)."""
        step = self.on_s or CODE_STEP_S
        group = [self.colour, self.off_colour] * ((self.n or 1) - 1) + [self.colour]
        return group + [self.off_colour] * round(self.pause_s / step)


@dataclass(frozen=True)
class Response:
    """One row of the feedback table."""

    led: Pattern
    beep: str | None
    phrase: str


BEEPS: dict[str, tuple[float, float, int]] = {  # name → (on_s, off_s, n)
    "short": (0.1, 0.0, 1),
    "long": (0.8, 0.0, 1),
    "double": (0.1, 0.1, 2),
}

_ROSTER = Response(Pattern("amber", on_s=2.0), None, "not_on_roster")
# Saved but not judged: green (it is recorded) alternating with amber (something is left to do).
_UNJUDGED = Pattern("green", "alternate", 0.3, 0.3, 3, off_colour="amber")

RESPONSES: dict[Signal, Response] = {
    Signal.ENTRY: Response(Pattern("green", on_s=1.5), "short", "entry"),
    Signal.EXIT: Response(Pattern("green", "double", 0.3, 0.2, 2), "short", "exit"),
    Signal.DUPLICATE: Response(Pattern("green", "brief", 0.3, 0.2, 1), None, "duplicate"),
    Signal.UNKNOWN_CARD: Response(Pattern("red", on_s=2.0), "long", "unknown_card"),
    Signal.NOT_ON_ROSTER: _ROSTER,
    Signal.INCOMPLETE: Response(_ROSTER.led, None, "incomplete"),
    Signal.UNREADABLE_CARD: Response(Pattern("red", on_s=2.0), None, "unreadable_card"),
    Signal.TAP_NOT_SAVED: Response(Pattern("red", "blink-fast", *FAST, 10), "long", "tap_not_saved"),
    Signal.RECORDED_UNCONFIGURED: Response(_UNJUDGED, "short", "recorded_unconfigured"),
    Signal.RECORDED_UNREGISTERED: Response(_UNJUDGED, "short", "recorded_unregistered"),
}

IDLE_PATTERNS: dict[Idle, Pattern] = {
    Idle.READER_FAILED: Pattern("red", "blink-fast", *FAST),
    Idle.DISK_FULL: Pattern("red"),
    Idle.CLOCK_UNSYNCED: Pattern("amber", "alternate", 0.5, 0.5, off_colour="red"),
    Idle.OFFLINE: Pattern("amber", "blink-slow", *SLOW),
    Idle.UNREGISTERED: Pattern("amber", "alternate", 0.25, 0.25, off_colour="green"),
    Idle.UNCONFIGURED: Pattern("amber", "blink-fast", *FAST),
    Idle.READY: Pattern("off"),
}

IDENTIFY = Pattern("all", "blink-fast", 0.25, 0.25, 10)
SELFTEST_STEP_S = 0.5

CODE_STEP_S = 0.3  # a blink code's on and off time
CODE_PAUSE_S = 1.5  # dark between two groups: five steps, so the groups are easy to tell apart


def _code(colour: str, n: int, verdict: Verdict) -> Response:
    return Response(Pattern(colour, "code", CODE_STEP_S, CODE_STEP_S, n, pause_s=CODE_PAUSE_S), "long", verdict.value)


VERDICTS: dict[Verdict, Response] = {
    Verdict.PASSED: Response(Pattern("green", on_s=3.0), "double", Verdict.PASSED.value),
    Verdict.READER: _code("red", 1, Verdict.READER),
    Verdict.NETWORK: _code("amber", 2, Verdict.NETWORK),
    Verdict.TLS: _code("amber", 3, Verdict.TLS),
    Verdict.BROKER: _code("amber", 4, Verdict.BROKER),
    Verdict.CLOCK: _code("amber", 5, Verdict.CLOCK),
    Verdict.DISK: _code("red", 6, Verdict.DISK),
    Verdict.SOUND: _code("red", 7, Verdict.SOUND),
    Verdict.PINS: _code("red", 8, Verdict.PINS),
}

_CHANNELS = {  # colour → (channel 1, channel 2, channel 3) of the RGBLED device
    "rgb": {
        "off": (0, 0, 0),
        "red": (1, 0, 0),
        "green": (0, 1, 0),
        "blue": (0, 0, 1),
        "amber": (1, 1, 0),
        "all": (1, 1, 1),
    },
    "tower": {"off": (0, 0, 0), "red": (1, 0, 0), "green": (0, 1, 0), "amber": (0, 0, 1), "all": (1, 1, 1)},
}
_LAMPS = {"rgb": ("red", "green", "blue"), "tower": ("red", "amber", "green")}


def led_wiring(pins: Pins) -> tuple[str, tuple[int, int, int]] | None:
    """("rgb" | "tower", (channel pins)) or None; see the module docstring for the precedence."""
    third, kind = (pins.led_blue, "rgb") if pins.led_blue is not None else (pins.led_amber, "tower")
    if third is None and pins.led_red is None and pins.led_green is None:
        return None
    if third is None or pins.led_red is None or pins.led_green is None:
        raise ConfigError("pins: the status LED needs led_red, led_green and led_blue (RGB) or led_amber (tower)")
    return kind, (pins.led_red, pins.led_green, third)


class Feedback:
    """LED + buzzer + voice. `show()` and `set_idle()` return at once; patterns run in gpiozero's
    background blink threads, and one resume thread puts the idle pattern back when a tap's ends."""

    def __init__(
        self,
        pins: Pins,
        voice: Voice,
        events: EventSink | None = None,
        pin_factory: Factory | None = None,
        *,
        reader_reminder_s: float = READER_REMINDER_S,
        quiet: Callable[[], bool] | None = None,
    ) -> None:
        self._voice = voice
        # During the site's quiet hours the reader-failed reminder is not spoken (the red LED still
        # blinks): a gate must not call out every minute all night beside a residential street.
        self._quiet = quiet or (lambda: False)
        self._events = events
        self._reminder_s = reader_reminder_s
        self._lock = threading.RLock()
        wiring = led_wiring(pins)
        used = [p for p in ((wiring[1] if wiring else ()) + (pins.buzzer,)) if p is not None]
        if len(used) != len(set(used)):
            raise ConfigError(f"pins: the LED and buzzer pins must differ (got {used})")
        self.wiring = wiring[0] if wiring else None
        self._colours = _CHANNELS[self.wiring] if self.wiring else {}
        self._led: RGBLED | None = None
        self._buzzer: Buzzer | None = None
        if wiring is None:
            log.warning("feedback: no status LED pins configured")
        else:
            self._led = RGBLED(*wiring[1], pwm=False, pin_factory=pin_factory)
        if pins.buzzer is not None:
            self._buzzer = Buzzer(pins.buzzer, pin_factory=pin_factory)
        self._idle: set[Idle] = {Idle.READY}
        self._shown_idle = Idle.READY
        self._generation = 0  # bumped by every tap pattern; a stale timer sees it and does nothing
        self._busy = False  # a tap's (or identify/selftest) pattern is on the LED
        self._timer = _Resumer(self._resume)
        self._reminder: _Reminder | None = None
        self._closed = False

    # --- the table -------------------------------------------------------------------------------
    def show(self, signal: Signal) -> None:
        """A tap's feedback: LED pattern + beep + voice, interrupting whatever was showing."""
        response = RESPONSES[signal]
        with self._lock:
            if self._closed:
                return
            self._begin(response.led, response.led.duration)
            self._beep(response.beep)
        self._voice.say(response.phrase)

    def set_idle(self, states: set[Idle]) -> None:
        """The LED between taps: the first of `states` in IDLE_PRECEDENCE (READY when empty)."""
        with self._lock:
            if self._closed:
                return
            self._idle = set(states)
            top = next((s for s in IDLE_PRECEDENCE if s in self._idle), Idle.READY)
            changed = top != self._shown_idle
            self._shown_idle = top
            if changed:
                if not self._busy:
                    self._apply(IDLE_PATTERNS[top])
                self._emit_led(IDLE_PATTERNS[top])
            self._set_reminder(Idle.READER_FAILED in self._idle)
        if changed and top in IDLE_PHRASES:
            self._voice.say(IDLE_PHRASES[top])

    @property
    def idle(self) -> Idle:
        """The idle state the LED shows between taps."""
        return self._shown_idle

    def identify(self, name: str) -> None:
        """Server command: which gate is this? Every lamp blinks fast, double beep, says its name."""
        with self._lock:
            if self._closed:
                return
            self._begin(IDENTIFY, IDENTIFY.duration)
            self._beep("double")
        self._voice.say("identify", text=name)

    def selftest(self, speak: bool = True) -> None:
        """Each lamp in turn, the buzzer, a test phrase: site staff check every output at once.
        `genba-gate selftest` passes speak=False: it plays the test phrase itself, to see the player's exit code."""
        with self._lock:
            if self._closed:
                return
            lamps = _LAMPS[self.wiring] if self.wiring else ()
            self._generation += 1
            self._busy = True
            if self._led is not None:
                self._led.source = None
                self._led.source_delay = SELFTEST_STEP_S
                self._led.source = [self._colours[lamp] for lamp in lamps] + [self._colours["off"]]
                self._emit("led all cycle")
            self._schedule_resume(SELFTEST_STEP_S * (len(lamps) + 1))
            self._beep("double")
        if speak:
            self._voice.say("selftest")

    @property
    def selftest_s(self) -> float:
        """How long `selftest()`'s lamp cycle runs."""
        return SELFTEST_STEP_S * (len(_LAMPS[self.wiring]) + 1) if self.wiring else 0.0

    def show_verdict(self, verdict: Verdict, hold_s: float | None = None, speak: bool = True) -> None:
        """`genba-gate selftest`'s result: its LED pattern for `hold_s` (None: the pattern's own length,
        for ever for a blink code), its beep, and its sentence unless `speak` is False (the sound failed)."""
        response = VERDICTS[verdict]
        with self._lock:
            if self._closed:
                return
            self._begin(response.led, response.led.duration if hold_s is None else hold_s)
            self._beep(response.beep)
        if speak:
            self._voice.say(response.phrase)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._timer.close()
            self._set_reminder(False)
            for device in (self._led, self._buzzer):
                if device is not None:
                    device.close()

    # --- internals -------------------------------------------------------------------------------
    def _begin(self, pattern: Pattern, duration: float | None) -> None:
        self._generation += 1
        self._busy = True
        self._apply(pattern)
        self._emit_led(pattern)
        self._schedule_resume(duration)

    def _schedule_resume(self, duration: float | None) -> None:
        if duration is None:
            self._timer.cancel()
        else:
            self._timer.schedule(duration, self._generation)

    def _resume(self, generation: int) -> None:
        with self._lock:
            if self._closed or generation != self._generation:
                return  # a newer pattern took over
            self._busy = False
            self._apply(IDLE_PATTERNS[self._shown_idle])

    def _apply(self, pattern: Pattern) -> None:
        led = self._led
        if led is None:
            return
        if led.source is not None:
            led.source = None  # a running selftest cycle or blink code
        colour = self._colours[pattern.colour]
        if pattern.mode == "code":  # counted groups: gpiozero's blink() has no pause, its source thread runs it
            led.source_delay = pattern.on_s or CODE_STEP_S
            led.source = itertools.cycle([self._colours[c] for c in pattern.frames()])
        elif pattern.mode == "steady":
            led.value = colour
        else:
            led.blink(
                on_time=pattern.on_s,
                off_time=pattern.off_s,
                on_color=colour,
                off_color=self._colours[pattern.off_colour],
                n=pattern.n,
                background=True,
            )

    def _beep(self, kind: str | None) -> None:
        if self._buzzer is None:
            return
        if kind is None:
            self._buzzer.off()  # silence a previous tap's beep at once
            return
        on_s, off_s, n = BEEPS[kind]
        self._buzzer.beep(on_time=on_s, off_time=off_s, n=n, background=True)
        self._emit(f"beep {kind}")

    def _emit_led(self, pattern: Pattern) -> None:
        if self._led is not None:
            self._emit(pattern.event)

    def _emit(self, line: str) -> None:
        if self._events is not None:
            try:
                self._events(line)
            except Exception:  # printing must not break feedback
                log.exception("feedback: event sink failed")

    def _remind(self) -> None:
        if not self._quiet():
            self._voice.say("reader_check")

    def _set_reminder(self, on: bool) -> None:
        if on and self._reminder is None:
            self._reminder = _Reminder(self._reminder_s, self._remind)
        elif not on and self._reminder is not None:
            self._reminder.stop()
            self._reminder = None


class _Resumer:
    """Puts the idle pattern back when a tap's pattern ends: one thread for the gate's life, where a
    threading.Timer per tap started (and tore down) a thread in every tap, and back-to-back taps met the
    last one's thread still exiting on their way to the LED. A stale call is harmless: _resume() checks
    the generation."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self._action = action
        self._cond = threading.Condition(threading.Lock())
        self._due: tuple[float, int] | None = None  # (monotonic deadline, generation)
        self._closed = False
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, generation: int) -> None:
        due = time.monotonic() + delay
        with self._cond:
            if self._closed:
                return
            # Woken only when the new end comes first; otherwise it wakes at the old one and waits on.
            wake = self._due is None or due < self._due[0]
            self._due = (due, generation)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="feedback-resume", daemon=True)
                self._thread.start()
            elif wake:
                self._cond.notify()

    def cancel(self) -> None:
        with self._cond:
            self._due = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._due = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._due is None:
                    self._cond.wait()
                    continue
                left = self._due[0] - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                generation = self._due[1]
                self._due = None
                self._cond.release()  # the action takes the Feedback lock: never hold both
                try:
                    self._action(generation)
                except Exception:
                    log.exception("feedback: resuming the idle pattern failed")
                finally:
                    self._cond.acquire()


class _Reminder:
    """Says something at once and then every `interval_s` until stopped (the reader-failed warning)."""

    def __init__(self, interval_s: float, action: Callable[[], None]) -> None:
        self._interval_s = interval_s
        self._action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feedback-reminder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._action()
            if self._stop.wait(self._interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
