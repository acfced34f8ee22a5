"""The gate's LED and buzzer, on gpiozero's mock pins: what a worker sees and hears after each tap.

Timings come from the pins' own recorded history (MockPin.states: time since the previous change,
new state), compared with gpiozero's tolerance (5 % or 50 ms). Pins: tower red 17, green 27, amber 22,
buzzer 18 (the config defaults); RGB uses blue 22.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from pydantic import ValidationError

from firmware.config import Pins
from firmware.config import Voice as VoiceConfig
from firmware.errors import ConfigError
from firmware.feedback import Feedback, Idle, Signal
from firmware.voice import Voice

RED, GREEN, AMBER, BLUE, BUZZER = 17, 27, 22, 22, 18
TOWER = Pins()
RGB = Pins(led_blue=BLUE)


class SpokenLog:
    """Stands in for Voice (tested in test_voice.py): records what the gate asked to say."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, key: str, text: str | None = None) -> None:
        self.said.append(key if text is None else f"{key}:{text}")


@pytest.fixture
def voice() -> SpokenLog:
    return SpokenLog()


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def make(factory: MockFactory, voice: SpokenLog, events: list[str]) -> Iterator[Callable[..., Feedback]]:
    made: list[Feedback] = []

    def build(pins: Pins = TOWER, **kw: float) -> Feedback:
        fb = Feedback(pins, voice, events=events.append, pin_factory=factory, **kw)  # type: ignore[arg-type]
        made.append(fb)
        for p in factory.pins.values():
            p.clear_states()  # times below count from here
        return fb

    yield build
    for fb in made:
        fb.close()


def pin(factory: MockFactory, number: int) -> MockPin:
    return factory.pin(number)


def timeline(p: MockPin, expected: list[tuple[float, bool]]) -> None:
    """The pin went through exactly these (seconds since previous change, state) steps."""
    assert [s.state for s in p.states] == [s for _, s in expected], p.states
    p.assert_states_and_times(expected)


def test_entry_shows_green_with_a_short_beep_then_the_gate_goes_dark(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.ENTRY)
    time.sleep(1.8)
    timeline(pin(factory, GREEN), [(0, False), (0, True), (1.5, False)])
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.1, False)])
    timeline(pin(factory, RED), [(0, False)])
    timeline(pin(factory, AMBER), [(0, False)])
    assert voice.said == ["entry"]
    assert events == ["led green", "beep short"]


def test_exit_blinks_green_twice_with_a_short_beep(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.EXIT)
    time.sleep(1.2)
    timeline(pin(factory, GREEN), [(0, False), (0, True), (0.3, False), (0.2, True), (0.3, False)])
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.1, False)])
    assert voice.said == ["exit"]
    assert events == ["led green double", "beep short"]


def test_same_card_within_debounce_is_a_brief_green_without_beep(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.DUPLICATE)
    time.sleep(0.7)
    timeline(pin(factory, GREEN), [(0, False), (0, True), (0.3, False)])
    timeline(pin(factory, BUZZER), [(0, False)])
    assert voice.said == ["duplicate"]
    assert events == ["led green brief"]


def test_unknown_card_is_red_with_a_long_beep(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.UNKNOWN_CARD)
    time.sleep(2.2)
    timeline(pin(factory, RED), [(0, False), (0, True), (2.0, False)])
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.8, False)])
    timeline(pin(factory, GREEN), [(0, False)])
    assert voice.said == ["unknown_card"]
    assert events == ["led red", "beep long"]


@pytest.mark.parametrize("signal", [Signal.NOT_ON_ROSTER, Signal.INCOMPLETE])
def test_worker_not_on_roster_or_without_trade_sees_amber_and_hears_to_call_the_foreman(
    make, factory, voice, events, signal: Signal
) -> None:
    fb = make()
    fb.show(signal)
    time.sleep(0.2)
    timeline(pin(factory, AMBER), [(0, False), (0, True)])
    timeline(pin(factory, BUZZER), [(0, False)])
    timeline(pin(factory, RED), [(0, False)])
    assert voice.said == [signal.value]
    assert events == ["led amber"]


def test_random_id_card_is_red_and_told_to_use_the_ccus_card(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.UNREADABLE_CARD)
    time.sleep(0.2)
    assert pin(factory, RED).state is True
    timeline(pin(factory, BUZZER), [(0, False)])
    assert voice.said == ["unreadable_card"]
    assert events == ["led red"]


def test_tap_not_saved_blinks_red_fast_then_the_disk_full_alarm_stays(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.TAP_NOT_SAVED)
    fb.set_idle({Idle.READY, Idle.DISK_FULL})  # the gate learns the disk is full in the same breath
    time.sleep(3.3)
    blinks = [(0.0, False)] + [(0.15 if i else 0.0, s) for i in range(20) for s in [i % 2 == 0]]
    timeline(pin(factory, RED), [*blinks, (0.15, True)])  # and red steady from then on
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.8, False)])
    assert voice.said == ["tap_not_saved"]
    assert events == ["led red blink-fast", "beep long", "led red"]


def test_a_new_tap_interrupts_the_previous_pattern_at_once(make, factory, voice, events) -> None:
    fb = make()
    fb.show(Signal.UNKNOWN_CARD)
    time.sleep(0.3)
    fb.show(Signal.ENTRY)
    time.sleep(2.2)  # past the unknown card's 2.0 s: its end must not cut the entry short
    timeline(pin(factory, RED), [(0, False), (0, True), (0.3, False)])
    timeline(pin(factory, GREEN), [(0, False), (0.3, True), (1.5, False)])
    # the long beep stops at the new tap, which beeps short: the buzzer is on 0.3 + 0.1 s in one go
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.4, False)])
    assert voice.said == ["unknown_card", "entry"]
    assert events == ["led red", "beep long", "led green", "beep short"]


def test_a_tap_without_beep_silences_the_previous_beep(make, factory) -> None:
    fb = make()
    fb.show(Signal.UNKNOWN_CARD)
    time.sleep(0.2)
    fb.show(Signal.DUPLICATE)
    time.sleep(0.8)
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.2, False)])


def test_idle_led_shows_the_most_important_state(make, factory, voice, events) -> None:
    fb = make(reader_reminder_s=60)
    assert fb.idle == Idle.READY
    fb.set_idle({Idle.READY, Idle.OFFLINE})
    assert fb.idle == Idle.OFFLINE
    fb.set_idle({Idle.READY, Idle.OFFLINE, Idle.CLOCK_UNSYNCED})
    assert fb.idle == Idle.CLOCK_UNSYNCED
    fb.set_idle({Idle.READY, Idle.OFFLINE, Idle.CLOCK_UNSYNCED, Idle.DISK_FULL})
    assert fb.idle == Idle.DISK_FULL
    fb.set_idle({Idle.READY, Idle.OFFLINE, Idle.CLOCK_UNSYNCED, Idle.DISK_FULL, Idle.READER_FAILED})
    assert fb.idle == Idle.READER_FAILED
    fb.set_idle({Idle.READY})
    fb.set_idle(set())
    assert fb.idle == Idle.READY
    assert events == [
        "led amber blink-slow",
        "led amber/red alternate",
        "led red",
        "led red blink-fast",
        "led off",
    ]
    assert voice.said == ["reader_check"]  # said at once when the reader failed
    assert not any(pin(factory, n).state for n in (RED, GREEN, AMBER))


def test_the_same_idle_state_again_changes_nothing(make, factory, events) -> None:
    fb = make()
    for _ in range(3):
        fb.set_idle({Idle.READY, Idle.DISK_FULL})
    assert events == ["led red"]
    timeline(pin(factory, RED), [(0, False), (0, True)])


def test_offline_is_a_slow_amber_blink(make, factory) -> None:
    fb = make()
    fb.set_idle({Idle.OFFLINE})
    time.sleep(1.3)
    timeline(pin(factory, AMBER), [(0, False), (0, True), (1.0, False)])
    timeline(pin(factory, RED), [(0, False)])


def test_unsynced_clock_alternates_amber_and_red_lamps_on_a_tower(make, factory) -> None:
    fb = make()
    fb.set_idle({Idle.CLOCK_UNSYNCED, Idle.OFFLINE})
    time.sleep(1.2)
    timeline(pin(factory, AMBER), [(0, False), (0, True), (0.5, False), (0.5, True)])
    timeline(pin(factory, RED), [(0, False), (0.5, True), (0.5, False)])


def test_unsynced_clock_on_an_rgb_led_alternates_amber_and_red(make, factory) -> None:
    fb = make(RGB)
    fb.set_idle({Idle.CLOCK_UNSYNCED})
    time.sleep(1.2)
    timeline(pin(factory, RED), [(0, False), (0, True)])  # red in both colours: stays lit
    timeline(pin(factory, GREEN), [(0, False), (0, True), (0.5, False), (0.5, True)])  # amber = red + green
    timeline(pin(factory, BLUE), [(0, False)])


def test_reader_failure_blinks_red_fast_and_asks_to_check_the_reader_periodically(make, factory, voice) -> None:
    fb = make(reader_reminder_s=0.2)
    fb.set_idle({Idle.READY, Idle.READER_FAILED})
    time.sleep(0.5)
    states = pin(factory, RED).states
    assert [s.state for s in states[:4]] == [False, True, False, True]
    pin(factory, RED).assert_states_and_times([(0, False), (0, True), (0.15, False), (0.15, True)])
    assert voice.said.count("reader_check") >= 2
    fb.set_idle({Idle.READY})  # the reader is back
    heard = len(voice.said)
    time.sleep(0.5)
    assert len(voice.said) == heard
    assert pin(factory, RED).state is False


def test_idle_resumes_after_a_tap_and_changes_during_a_tap_wait_for_its_end(make, factory, events) -> None:
    fb = make()
    fb.set_idle({Idle.DISK_FULL})
    fb.show(Signal.ENTRY)
    time.sleep(0.2)
    fb.set_idle({Idle.OFFLINE})  # the broker went away while the worker was being answered
    time.sleep(1.6)
    timeline(pin(factory, GREEN), [(0, False), (0, True), (1.5, False)])
    timeline(pin(factory, RED), [(0, False), (0, True), (0, False)])  # disk-full red, replaced by the tap
    timeline(pin(factory, AMBER), [(0, False), (1.5, True)])  # offline blink only after the tap's 1.5 s
    assert events == ["led red", "led green", "beep short", "led amber blink-slow"]


def test_rgb_led_mixes_amber_from_red_and_green(make, factory, events) -> None:
    fb = make(RGB)
    assert fb.wiring == "rgb"
    fb.show(Signal.NOT_ON_ROSTER)
    time.sleep(0.1)
    assert (pin(factory, RED).state, pin(factory, GREEN).state, pin(factory, BLUE).state) == (True, True, False)
    fb.show(Signal.ENTRY)
    time.sleep(0.1)
    assert (pin(factory, RED).state, pin(factory, GREEN).state, pin(factory, BLUE).state) == (False, True, False)
    assert events[0] == "led amber"


def test_led_blue_takes_precedence_over_led_amber(make, factory) -> None:
    assert make(Pins(led_blue=5, led_amber=6)).wiring == "rgb"
    assert make(Pins(led_red=12, led_green=13, led_amber=16, buzzer=None)).wiring == "tower"


def test_half_wired_led_or_clashing_pins_are_refused(factory, voice) -> None:
    with pytest.raises(ConfigError, match="led_red"):
        Feedback(Pins(led_green=None), voice, pin_factory=factory)  # type: ignore[arg-type]
    # Two parts on one pin are refused by the config itself, naming both.
    with pytest.raises(ValidationError, match="buzzer and led_red are both on GPIO"):
        Pins(buzzer=RED)  # type: ignore[arg-type]


def test_gate_without_buzzer_still_shows_and_speaks(make, factory, voice, events) -> None:
    fb = make(Pins(buzzer=None))
    fb.show(Signal.UNKNOWN_CARD)
    time.sleep(0.1)
    assert pin(factory, RED).state is True
    assert "GPIO18" not in {info.name for info in factory.pins}  # the buzzer pin was never claimed
    assert voice.said == ["unknown_card"]
    assert events == ["led red"]


def test_gate_without_led_still_beeps_and_speaks(make, factory, voice, events) -> None:
    fb = make(Pins(led_red=None, led_green=None, led_amber=None))
    assert fb.wiring is None
    fb.show(Signal.ENTRY)
    fb.set_idle({Idle.OFFLINE})
    time.sleep(0.3)
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.1, False)])
    assert events == ["beep short"]
    assert voice.said == ["entry"]


def test_selftest_lights_each_lamp_in_turn_beeps_and_speaks(make, factory, voice, events) -> None:
    fb = make()
    fb.selftest()
    time.sleep(2.2)
    timeline(pin(factory, RED), [(0, False), (0, True), (0.5, False)])
    timeline(pin(factory, AMBER), [(0, False), (0.5, True), (0.5, False)])
    timeline(pin(factory, GREEN), [(0, False), (1.0, True), (0.5, False)])
    timeline(pin(factory, BUZZER), [(0, False), (0, True), (0.1, False), (0.1, True), (0.1, False)])
    assert voice.said == ["selftest"]
    assert events == ["led all cycle", "beep double"]


def test_a_tap_during_selftest_takes_over(make, factory) -> None:
    fb = make()
    fb.selftest()
    time.sleep(0.2)
    fb.show(Signal.ENTRY)
    time.sleep(1.0)  # the cycle would have lit amber at 0.5: it must not
    timeline(pin(factory, AMBER), [(0, False)])
    timeline(pin(factory, RED), [(0, False), (0, True), (0.2, False)])
    assert pin(factory, GREEN).state is True


def test_identify_blinks_every_lamp_and_says_the_gate_name(make, factory, voice, events) -> None:
    fb = make()
    fb.identify("gate-01")
    time.sleep(0.6)
    for n in (RED, AMBER, GREEN):
        pin(factory, n).assert_states_and_times([(0, False), (0, True), (0.25, False), (0.25, True)])
    assert voice.said == ["identify:gate-01"]
    assert events == ["led all blink-fast", "beep double"]


def test_simulation_prints_what_the_gate_shows_and_says(factory, tmp_path) -> None:
    events: list[str] = []
    voice = Voice(VoiceConfig(), tmp_path / "voice", events=events.append, simulate=True)
    fb = Feedback(TOWER, voice, events=events.append, pin_factory=factory)
    try:
        fb.show(Signal.ENTRY)
        fb.show(Signal.NOT_ON_ROSTER)
        fb.set_idle({Idle.OFFLINE})
    finally:
        fb.close()
        voice.close()
    assert events == [
        "led green",
        "beep short",
        "say 入場を記録しました",
        "led amber",
        "say 作業員名簿に登録されていません。職長に連絡してください",
        "led amber blink-slow",
    ]


def test_the_reader_reminder_is_not_spoken_in_quiet_hours_but_the_led_still_warns(factory, voice, events) -> None:
    quiet = [True]
    fb = Feedback(TOWER, voice, events=events.append, pin_factory=factory, reader_reminder_s=0.1,
                  quiet=lambda: quiet[0])
    try:
        fb.set_idle({Idle.READY, Idle.READER_FAILED})
        time.sleep(0.35)
        assert "reader_check" not in voice.said
        assert len(pin(factory, RED).states) > 2  # blinking
        quiet[0] = False  # morning
        time.sleep(0.3)
        assert "reader_check" in voice.said
    finally:
        fb.close()
