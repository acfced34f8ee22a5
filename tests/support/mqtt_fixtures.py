"""Pytest fixtures around a private Mosquitto (tests/support/mosquitto.py).

Registered for the whole suite by conftest.py; a test module may also import the fixture by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto import PrivateMosquitto

__all__ = ["mosquitto"]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A started broker of this test's own, on a free port with persistence in tmp_path; stopped after.

    The broker's log is printed when the test fails (pytest shows captured stdout)."""
    broker = PrivateMosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()
        print(f"--- mosquitto log (port {broker.port}) ---\n{broker.log_tail(60)}")
