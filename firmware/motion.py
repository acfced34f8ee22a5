"""The spoken prompt: a PIR sensor sees someone approach, the gate says 「カードをタッチしてください」.

A prompt that repeats at every passer-by is noise, so it is held back:
- cooldown: not again within ``[voice] prompt_cooldown_s`` of the last prompt;
- right after a tap: not within ``[voice] prompt_after_tap_s`` of the last tap (the worker has just
  been answered; the gate calls `tapped()` on each tap);
- quiet hours: not between ``[quiet_hours] start`` and ``end`` (local time; a window that crosses
  midnight, 20:00–06:00, works; start == end or only one of them set means no quiet hours).

"Approach" is the sensor's inactive → active edge (gpiozero's `when_motion`): someone standing in
front of the gate is prompted once, not continuously. The clock is injectable for tests; a clock that
steps backwards (NTP sync on a Pi without RTC) does not stretch a cooldown: a negative gap counts as
elapsed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, time
from typing import TYPE_CHECKING

from gpiozero import MotionSensor

from firmware.config import QuietHours
from firmware.config import Voice as VoiceConfig

if TYPE_CHECKING:
    from gpiozero import Factory

    from firmware.voice import Voice

log = logging.getLogger("genba.gate.motion")


def in_quiet_hours(quiet: QuietHours, at: time) -> bool:
    """Whether `at` (local time of day) falls in [start, end), crossing midnight when start > end."""
    start, end = quiet.start, quiet.end
    if start is None or end is None or start == end:
        return False
    at = at.replace(tzinfo=None)
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start < end:
        return start <= at < end
    return at >= start or at < end


class MotionPrompt:
    """gpiozero MotionSensor → voice.say("prompt"), with cooldown, quiet hours and none right after a tap."""

    def __init__(
        self,
        pin: int,
        voice: Voice,
        cfg: VoiceConfig,
        quiet: QuietHours,
        clock: Callable[[], datetime] = datetime.now,
        pin_factory: Factory | None = None,
    ) -> None:
        if (quiet.start is None) != (quiet.end is None):
            log.warning("motion: quiet_hours needs both start and end; no quiet hours")
        self._voice = voice
        self._cfg = cfg
        self._quiet = quiet
        self._clock = clock
        self._lock = threading.Lock()
        self._last_prompt: datetime | None = None
        self._last_tap: datetime | None = None
        self.approaches = 0  # how many times the sensor saw someone come (status, tests)
        self.prompts = 0  # how many of them were prompted
        self._sensor = MotionSensor(pin, pin_factory=pin_factory)
        self._sensor.when_motion = self._on_motion
        # gpiozero takes its first sample (0.1 s after start) as the initial state and fires nothing for
        # it; reading the value waits for that sample, so someone arriving right after start is an edge.
        _ = self._sensor.value

    def tapped(self) -> None:
        """The gate calls this on each tap: no prompt for prompt_after_tap_s."""
        with self._lock:
            self._last_tap = self._clock()

    def approached(self) -> bool:
        """Someone is in front of the gate: prompt unless held back. True when the prompt was said."""
        with self._lock:
            now = self._clock()
            if in_quiet_hours(self._quiet, now.time()):
                return False
            if _within(self._last_tap, now, self._cfg.prompt_after_tap_s):
                return False
            if _within(self._last_prompt, now, self._cfg.prompt_cooldown_s):
                return False
            self._last_prompt = now
            self.prompts += 1
        self._voice.say("prompt")
        return True

    @property
    def motion_detected(self) -> bool:
        return bool(self._sensor.motion_detected)

    def close(self) -> None:
        self._sensor.when_motion = None
        self._sensor.close()

    def _on_motion(self) -> None:
        try:
            self.approached()
        except Exception:  # a callback on gpiozero's thread must not die
            log.exception("motion: prompt failed")
        finally:
            self.approaches += 1


def _within(then: datetime | None, now: datetime, seconds: float) -> bool:
    if then is None:
        return False
    gap = (now - then).total_seconds()
    return 0 <= gap < seconds
