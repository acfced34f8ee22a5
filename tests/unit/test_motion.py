"""The motion prompt: someone walks up to the gate, it says 「カードをタッチしてください」 — but not too often.

The PIR sensor is a gpiozero mock pin driven high and low; the clock is a settable fake, so cooldowns
of minutes take no time.
"""

from __future__ import annotations

import time as systime
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta

import pytest
from gpiozero.pins.mock import MockPin

from firmware.config import QuietHours
from firmware.config import Voice as VoiceConfig
from firmware.motion import MotionPrompt, in_quiet_hours

PIR = 4


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class SpokenLog:
    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, key: str, text: str | None = None) -> None:
        self.said.append(key)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = systime.monotonic() + timeout
    while systime.monotonic() < deadline:
        if condition():
            return True
        systime.sleep(0.01)
    return condition()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 4, 7, 7, 30))


@pytest.fixture
def voice() -> SpokenLog:
    return SpokenLog()


@pytest.fixture
def make(factory, voice, clock) -> Iterator[Callable[..., MotionPrompt]]:
    made: list[MotionPrompt] = []

    def build(quiet: QuietHours | None = None, **cfg: float) -> MotionPrompt:
        quiet = quiet or QuietHours()
        prompt = MotionPrompt(PIR, voice, VoiceConfig(**cfg), quiet, clock=clock, pin_factory=factory)  # type: ignore[arg-type]
        made.append(prompt)
        return prompt

    yield build
    for p in made:
        p.close()


def walk_up(pir: MockPin, prompt: MotionPrompt) -> None:
    """Someone comes into the sensor's view and leaves again; returns once the gate has reacted."""
    seen = prompt.approaches
    pir.drive_high()
    assert wait_for(lambda: prompt.approaches == seen + 1)
    pir.drive_low()
    assert wait_for(lambda: not prompt.motion_detected)


def test_someone_approaching_is_asked_to_touch_their_card(make, factory, voice) -> None:
    prompt = make()
    walk_up(factory.pin(PIR), prompt)
    assert voice.said == ["prompt"]


def test_no_second_prompt_within_the_cooldown(make, factory, voice, clock) -> None:
    prompt = make(prompt_cooldown_s=30, prompt_after_tap_s=0)
    pir = factory.pin(PIR)
    walk_up(pir, prompt)
    clock.advance(seconds=29)
    walk_up(pir, prompt)
    assert voice.said == ["prompt"]
    clock.advance(seconds=1)
    walk_up(pir, prompt)
    assert voice.said == ["prompt", "prompt"]
    assert (prompt.approaches, prompt.prompts) == (3, 2)


def test_someone_standing_in_front_is_prompted_once(make, factory, voice, clock) -> None:
    prompt = make(prompt_cooldown_s=0)
    pir = factory.pin(PIR)
    pir.drive_high()
    assert wait_for(lambda: prompt.approaches == 1)
    clock.advance(minutes=5)  # well past the cooldown, still standing there
    systime.sleep(0.5)  # the sensor samples at 10 Hz: several samples, all "motion"
    assert prompt.motion_detected
    assert prompt.approaches == 1
    assert voice.said == ["prompt"]


def test_no_prompt_right_after_a_tap(make, factory, voice, clock) -> None:
    prompt = make(prompt_cooldown_s=0, prompt_after_tap_s=10)
    pir = factory.pin(PIR)
    prompt.tapped()  # the worker has just been answered by the tap's own voice
    clock.advance(seconds=9)
    walk_up(pir, prompt)
    assert voice.said == []
    clock.advance(seconds=1)
    walk_up(pir, prompt)
    assert voice.said == ["prompt"]


@pytest.mark.parametrize(
    ("now", "prompted"),
    [
        (datetime(2025, 4, 7, 19, 59), True),
        (datetime(2025, 4, 7, 20, 0), False),
        (datetime(2025, 4, 7, 23, 30), False),
        (datetime(2025, 4, 8, 0, 0), False),
        (datetime(2025, 4, 8, 5, 59), False),
        (datetime(2025, 4, 8, 6, 0), True),
    ],
)
def test_quiet_hours_across_midnight(make, factory, voice, clock, now: datetime, prompted: bool) -> None:
    clock.now = now
    prompt = make(QuietHours(start=time(20, 0), end=time(6, 0)))
    walk_up(factory.pin(PIR), prompt)
    assert voice.said == (["prompt"] if prompted else [])


def test_quiet_hours_rules() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(13, 0))
    assert in_quiet_hours(lunch, time(12, 30)) and not in_quiet_hours(lunch, time(13, 0))
    assert not in_quiet_hours(lunch, time(11, 59))
    assert not in_quiet_hours(QuietHours(), time(3, 0))
    with pytest.raises(ValueError, match="both start and end"):  # half a window is refused by the config
        QuietHours(start=time(20, 0))
    assert not in_quiet_hours(QuietHours(start=time(6, 0), end=time(6, 0)), time(6, 0))


def test_a_clock_stepping_back_does_not_silence_the_gate(make, factory, voice, clock) -> None:
    prompt = make(prompt_cooldown_s=30)
    pir = factory.pin(PIR)
    walk_up(pir, prompt)
    clock.advance(hours=-9)  # NTP corrected a Pi that booted with a clock far ahead
    walk_up(pir, prompt)
    assert voice.said == ["prompt", "prompt"]
