"""The hardware reader: nfcpy's ContactlessFrontend (a Sony RC-S380 on USB, a PN532 on the Pi's UART).

Paths are nfcpy's: ``usb``, ``usb:054c:06c3``, ``tty:AMA0:pn532``, ``udp:127.0.0.1:PORT`` (nfcpy's
emulated link, used by the tests with an emulated card in another process).

How nfcpy behaves, and what this module does about it (nfcpy 1.0.4):

- ``ContactlessFrontend(path)`` raises OSError (ENODEV; FileNotFoundError when libusb itself is
  missing; socket.gaierror for a bad udp host) when it finds no device → ReaderError.
- ``connect(rdwr=…)`` loops ``while not terminate()`` over sense rounds; each round senses every
  target once (``iterations=1``), so ``terminate`` is checked between rounds and read() returns
  within its timeout plus at most one round (milliseconds on an RC-S380; about 4 s on the udp
  driver, which waits 1 s for each technology nobody answers).
- It returns False when the device raised IOError (unplugged, UART gone) → ReaderError; None when
  terminated; and the Tag itself when 'on-connect' returns a false value. With a true value it
  would instead block until the card is *removed* — a worker would get no feedback while the card
  is still on the reader — so 'on-connect' returns False and this module does the presence check
  itself, between reads, on the tag it holds.
- A card left on the reader is reported once: the tag is held and polled with ``tag.is_present``
  until it leaves. Some cards fail nfcpy's presence check at once (a MIFARE Classic answers the
  Type 2 READ with a NAK), so the last card's identity is also kept until a whole sense round
  finds the field empty; a card found again before that is the same presentation, not a new tap.
  Random-ID cards get a new ID at every power-up, so for them the identity is "a random card of
  this technology".
- Errors the *card* causes (CommunicationError, TagCommandError during activation) are not the
  reader's fault: the read returns None. Anything else propagates and the ReaderLoop reopens the
  device. The ReaderLoop always calls close() (a PN532 left open stops answering).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from firmware.errors import ReaderError
from firmware.reader.base import CardRead, Reader, Tech

log = logging.getLogger(__name__)

# FeliCa first: the CCUS card and most Japanese transit/ID cards; then ISO 14443 A and B.
TARGETS: tuple[str, ...] = ("212F", "424F", "106A", "106B")
PRESENCE_POLL_S = 0.1


def _is_card(target: Any) -> bool:
    """nfcpy's default 'on-discover': skip peer-to-peer devices (phones in NFC-DEP mode), read the rest."""
    if target.sel_res and target.sel_res[0] & 0x40:
        return False
    return not (target.sensf_res and target.sensf_res[1:3] == b"\x01\xfe")


def card_of(tag: Any) -> CardRead | None:
    """The CardRead for an activated nfcpy tag, or None for a technology the gate does not use."""
    brty: str = tag.target.brty
    tech: Tech
    if brty.endswith("F"):
        return CardRead.from_bytes("felica", bytes(tag.idm))
    if brty.endswith("A"):
        tech = "iso14443a"
    elif brty.endswith("B"):
        tech = "iso14443b"
    else:
        log.warning("ignoring a card of unknown technology %s", brty)
        return None
    uid = bytes(tag.identifier)
    if not 4 <= len(uid) <= 10:
        log.warning("ignoring a %s card with a %d-byte identifier", tech, len(uid))
        return None
    return CardRead.from_bytes(tech, uid)


def _identity(card: CardRead) -> tuple[str, str]:
    return (card.tech, "random" if card.random_id else card.uid)


class NfcpyReader(Reader):
    """A reader driven by nfcpy. One instance per device; all calls from one thread."""

    def __init__(self, path: str) -> None:
        if not path:
            raise ValueError("empty nfcpy device path")
        self.path = path
        self._nfc: Any = None  # the nfc module, imported on open (the gate runs without nfcpy in simulation)
        self._clf: Any = None
        self._held: Any = None  # the last tag read, until it leaves the field
        self._held_confirmed = False  # its presence check has answered "present" at least once
        self._last: tuple[str, str] | None = None  # identity of the last card reported, until the field is seen empty

    def __repr__(self) -> str:
        return f"NfcpyReader({self.path!r})"

    def open(self) -> None:
        self.close()
        try:
            import nfc
            import nfc.clf
            import nfc.tag
        except ImportError as exc:
            raise ReaderError("nfcpy is not installed (pip install 'genbagate[pi]')") from exc
        self._nfc = nfc
        try:
            self._clf = nfc.ContactlessFrontend(self.path)
        except Exception as exc:  # OSError in every case seen; any failure here means "no reader"
            raise ReaderError(f"no card reader at {self.path!r}: {exc}") from exc
        log.info("card reader %s opened: %s", self.path, self._clf)

    def close(self) -> None:
        clf, self._clf = self._clf, None
        self._held = None
        if clf is None:
            return
        try:
            clf.close()
        except Exception as exc:  # close must never raise; the device may be gone already
            log.warning("closing card reader %s: %s", self.path, exc)

    def read(self, timeout: float) -> CardRead | None:
        if self._clf is None:
            raise ReaderError(f"card reader {self.path!r} is not open")
        deadline = time.monotonic() + timeout
        while True:
            if self._held is not None and not self._wait_until_removed(deadline):
                return None  # the last card is still on the reader
            if time.monotonic() >= deadline:
                return None
            tag = self._connect(deadline)
            if tag is None:
                return None
            self._held, self._held_confirmed = tag, False
            card = card_of(tag)
            if card is None:
                continue
            if _identity(card) == self._last:
                log.debug("%s is still on the reader (not a new tap)", card.uid)
                continue
            self._last = _identity(card)
            # DEBUG only: the journal lives on the SD card, and a card UID is personal data.
            log.debug("card read: %s %s%s", card.tech, card.uid, " (random ID)" if card.random_id else "")
            return card

    # --- internals ------------------------------------------------------------------------------

    def _connect(self, deadline: float) -> Any:
        """One nfcpy connect() until a card is activated or the deadline passes: the Tag, or None."""
        nfc = self._nfc
        rounds = 0
        seen = False

        def terminate() -> bool:
            # connect() calls this before every sense round: a finished round that discovered
            # nothing means the field is empty, so the next card found is a new presentation.
            nonlocal rounds, seen
            if rounds and not seen:
                self._last = None
            rounds += 1
            seen = False
            return time.monotonic() >= deadline

        def on_discover(target: Any) -> bool:
            nonlocal seen
            seen = True
            return _is_card(target)

        rdwr = {
            "targets": list(TARGETS),
            "on-discover": on_discover,
            "on-connect": lambda tag: False,  # hand the tag back at once; presence is checked in read()
            "beep-on-connect": False,  # the gate's own buzzer gives the feedback, after the tap is saved
            "iterations": 1,
            "interval": 0.1,
        }
        try:
            result = self._clf.connect(rdwr=rdwr, terminate=terminate)
        except (nfc.clf.CommunicationError, nfc.tag.TagCommandError) as exc:
            log.info("a card could not be read: %r", exc)
            return None
        except OSError as exc:  # connect() catches IOError itself; this is the belt to its braces
            raise ReaderError(f"card reader {self.path!r} failed: {exc}") from exc
        if result is False:
            raise ReaderError(f"card reader {self.path!r} stopped answering")
        if result is None or result is True:
            return None
        return result

    def _wait_until_removed(self, deadline: float) -> bool:
        """Poll the held tag until it leaves (True) or the deadline passes with it still there (False)."""
        while True:
            if not self._is_present(self._held):
                if self._held_confirmed:
                    self._last = None  # the presence check saw it go: a reliable removal
                self._held = None
                return True
            self._held_confirmed = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(PRESENCE_POLL_S, remaining))

    def _is_present(self, tag: Any) -> bool:
        try:
            return bool(tag.is_present)
        except OSError as exc:
            raise ReaderError(f"card reader {self.path!r} failed: {exc}") from exc
        except Exception as exc:  # a card answering nonsense to the presence check has gone, for us
            log.debug("presence check failed: %r", exc)
            return False
