"""Which way a tap counts on a single-reader gate: a button toggles 入場 / 退場, a lamp shows 退場.

Gates at separate entry and exit doors are configured `in` and `out` and need no button; `auto`
leaves the pairing to the server.

The chosen way is kept in ``state_file`` (written atomically: a temp file, fsync, rename), so a
power cut or a watchdog restart does not silently turn an exit gate back into an entry gate.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
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
        state_file: Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._state_file = state_file
        self._current = self._load() or ("out" if initial == "out" else "in")
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
            self._save(self._current)
        log.info("direction now %s", self._current)
        self._show()

    def _load(self) -> str | None:
        if self._state_file is None:
            return None
        try:
            value = self._state_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None  # never set, or unreadable: the configured default
        return value if value in ("in", "out") else None

    def _save(self, value: str) -> None:
        if self._state_file is None:
            return
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        try:
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(value + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._state_file)
        except OSError as exc:  # a full or read-only card: the toggle still works until restart
            log.warning("could not keep the direction in %s: %s", self._state_file, exc)

    def _show(self) -> None:
        if self._led is not None:
            self._led.value = self._current == "out"
        if self._events is not None:
            self._events(f"direction {self._current}")

    def close(self) -> None:
        self._button.close()
        if self._led is not None:
            self._led.close()
