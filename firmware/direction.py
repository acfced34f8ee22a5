"""Which way a tap counts on a single-reader gate: a button toggles 入場 / 退場, a lamp shows 退場.

Gates at separate entry and exit doors are configured `in` and `out` and need no button; `auto`
leaves the pairing to the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Button

log = logging.getLogger("genba.gate.direction")


class DirectionSwitch:
    def __init__(
        self,
        button_pin: int,
        led_pin: int | None,
        initial: str = "in",
        events: Callable[[str], None] | None = None,
        pin_factory: Any = None,
    ) -> None:
        self._lock = threading.Lock()
        self._current = "out" if initial == "out" else "in"
        self._events = events
        self._button = Button(button_pin, bounce_time=0.05, pin_factory=pin_factory)
        self._led = LED(led_pin, pin_factory=pin_factory) if led_pin is not None else None
        self._button.when_pressed = self.toggle
        self._show()

    @property
    def current(self) -> str:
        return self._current

    def toggle(self) -> None:
        with self._lock:
            self._current = "out" if self._current == "in" else "in"
        log.info("direction now %s", self._current)
        self._show()

    def _show(self) -> None:
        if self._led is not None:
            self._led.value = self._current == "out"
        if self._events is not None:
            self._events(f"direction {self._current}")

    def close(self) -> None:
        self._button.close()
        if self._led is not None:
            self._led.close()
