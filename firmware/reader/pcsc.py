"""The PC/SC reader: a Sony RC-S300 (what 建レコ supports today) through pcscd + libccid + pyscard.

nfcpy cannot drive the RC-S300: it is a CCID device, i.e. a smart-card reader that does the RF work
itself and speaks APDUs. pcscd (with libccid ≥ 1.4.35, which knows the RC-S300/S and /P) owns the USB
device; this backend is a client of pcscd through pyscard's ``smartcard.scard`` (the PC/SC API
itself, not pyscard's higher-level observers, which run threads of their own).

Specs: ``pcsc`` is the first reader pcscd lists, ``pcsc:RC-S300`` the first whose name contains
"RC-S300" (case-insensitive; pcscd names it like "SONY FeliCa RC-S300/P … 00 00").

How a read goes, and why:

- ``SCardGetStatusChange`` waits (up to read()'s timeout) for the reader's state to change from the
  one last seen. pcsc-lite counts insertions and removals in the high 16 bits of the event state,
  so a card taken away and another put down between two calls is still seen as a new presentation.
- A new card: ``SCardConnect`` (shared: another PC/SC program may look at the reader too), the
  PC/SC GET DATA pseudo-APDU ``FF CA 00 00 00`` (PC/SC part 3: the reader answers with the card's
  UID, or a FeliCa card's IDm, + 90 00), ``SCardDisconnect`` leaving the card alone.
- The technology comes from the ATR the reader builds (PC/SC part 3): for a storage card it is
  ``3B 8F 80 01 80 4F 0C A0 00 00 03 06 SS C0 C1 …`` where SS is the standard (0x11 FeliCa — the
  RC-S300 answers ``…11 00 3B…`` — 0x01-0x03 ISO 14443 A, 0x05-0x07 ISO 14443 B); for an ISO-DEP card
  it is ``3B 8n 80 01`` + historical bytes, which for Type B are exactly the 8 bytes of ATQB
  application data, protocol info and MBLI. An 8-byte identifier can only be a FeliCa IDm (ISO
  14443-3 UIDs have 4, 7 or 10 bytes), which settles ATRs of other shapes.
- A card left on the reader is read once per presentation. The last card's identity is kept until
  the reader is seen empty, also across a reopen, so a card lying on the reader while the
  ReaderLoop reopens it is not a second tap.
- Errors the card causes (taken away during the read, mute, GET DATA refused) make read() return
  nothing; the read is tried again twice, 0.2 s apart, while the card stays on the reader.
  Everything else — pcscd gone (``SCARD_E_NO_SERVICE``), the reader unplugged (it leaves
  pcscd's list: ``SCARD_E_UNKNOWN_READER`` or the state UNKNOWN/UNAVAILABLE), another program
  holding the reader exclusively — is a ReaderError, and the ReaderLoop reopens with backoff: a
  new context, the reader looked up by name again, so a replugged RC-S300 is found.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from firmware.errors import ReaderError
from firmware.reader.base import CardRead, Reader, Tech

log = logging.getLogger(__name__)

GET_DATA_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
SW_OK = (0x90, 0x00)
# A card at the edge of the field can fail one exchange and answer the next: a failed read is tried
# again this often, this far apart, while the card stays on the reader. Then it has to be lifted.
READ_ATTEMPTS = 3
RETRY_S = 0.2
PCSC_STORAGE_PREFIX = bytes.fromhex("804F0CA000000306")  # category, AID tag/length, PC/SC RID
# PC/SC part 3 card names (C0 C1) that are FeliCa, whatever the standard byte says.
FELICA_CARD_NAMES = {0x003B, 0xF011, 0xF012}
UID_SIZES: dict[Tech, tuple[int, ...]] = {"felica": (8,), "iso14443a": (4, 7, 10), "iso14443b": (4,)}


def _u32(code: int) -> int:
    """PC/SC codes are DWORDs; pyscard hands them over as Python ints that may be signed."""
    return code & 0xFFFFFFFF


def historical_bytes(atr: bytes) -> bytes | None:
    """The ATR's historical bytes (ISO 7816-3: walk the interface bytes the Y indicators announce)."""
    if len(atr) < 2:
        return None
    count = atr[1] & 0x0F
    y = atr[1] >> 4
    i = 2
    while True:
        i += bin(y & 0x7).count("1")  # TA, TB, TC
        if not y & 0x8:  # no TD: the interface bytes end here
            break
        if i >= len(atr):
            return None
        y = atr[i] >> 4
        i += 1
    if i + count > len(atr):
        return None
    return atr[i : i + count]


def tech_of(atr: bytes, uid: bytes) -> Tech | None:
    """The card's technology from the ATR a PC/SC contactless reader built, checked against the UID size."""
    hist = historical_bytes(atr)
    tech: Tech | None = None
    if hist is not None and hist.startswith(PCSC_STORAGE_PREFIX) and len(hist) >= 11:
        standard, name = hist[8], int.from_bytes(hist[9:11], "big")
        if standard == 0x11 or name in FELICA_CARD_NAMES:
            tech = "felica"
        elif standard in (0x01, 0x02, 0x03):
            tech = "iso14443a"
        elif standard in (0x05, 0x06, 0x07):
            tech = "iso14443b"
        else:
            log.warning("ignoring a card of standard 0x%02X (not FeliCa or ISO 14443)", standard)
            return None
    elif len(uid) == 8:
        tech = "felica"  # only a FeliCa IDm has 8 bytes, whatever shape the reader gave the ATR
    elif hist is not None and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01":
        # ISO-DEP (14443-4): Type B iff the historical bytes are ATQB data + protocol info + MBLI.
        type_b = len(hist) == 8 and hist[7] & 0x0F == 0 and len(uid) == 4
        tech = "iso14443b" if type_b else "iso14443a"
    elif len(uid) in (7, 10):
        tech = "iso14443a"
    if tech is None:
        log.warning("ignoring a card: cannot tell its technology from ATR %s", atr.hex().upper())
        return None
    if len(uid) not in UID_SIZES[tech]:
        log.warning("ignoring a %s card with a %d-byte identifier", tech, len(uid))
        return None
    return tech


class PcscReader(Reader):
    """A reader behind pcscd. One instance per reader; all calls from one thread."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # substring of the reader's PC/SC name; "" = the first reader
        self._scard: Any = None  # smartcard.scard, imported on open (simulation runs without pyscard)
        self._context: Any = None
        self._reader: str | None = None  # the full PC/SC name of the reader in use
        self._state = 0  # the reader state last seen (SCARD_STATE_UNAWARE until the first answer)
        self._present = False  # a card is on the reader, and it has been dealt with
        self._last: str | None = None  # identity of the last card reported, until the reader is seen empty
        self._attempts = 0  # reads tried on the card now on the reader
        self._retry_atr: bytes | None = None  # set while a failed read is to be tried again

    def __repr__(self) -> str:
        return f"PcscReader({self.name!r})"

    @property
    def reader_name(self) -> str | None:
        """The PC/SC name of the reader in use (for logs and status), None when not open."""
        return self._reader

    def open(self) -> None:
        self.close()
        try:
            from smartcard import scard
        except ImportError as exc:
            raise ReaderError("pyscard is not installed (pip install 'genbagate[pi]')") from exc
        self._scard = scard
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if _u32(hresult) != _u32(scard.SCARD_S_SUCCESS):
            raise ReaderError(f"pcscd is not reachable: {self._message(hresult)}")
        self._context = context
        hresult, readers = scard.SCardListReaders(context, [])
        if _u32(hresult) == _u32(scard.SCARD_E_NO_READERS_AVAILABLE) or (
            _u32(hresult) == _u32(scard.SCARD_S_SUCCESS) and not readers
        ):
            raise ReaderError("pcscd lists no card reader (is the RC-S300 plugged in?)")
        if _u32(hresult) != _u32(scard.SCARD_S_SUCCESS):
            raise ReaderError(f"listing PC/SC readers failed: {self._message(hresult)}")
        wanted = self.name.lower()
        matching = [r for r in readers if wanted in r.lower()]
        if not matching:
            raise ReaderError(f"no PC/SC reader named like {self.name!r} (pcscd has: {', '.join(readers)})")
        self._reader = matching[0]
        self._state = scard.SCARD_STATE_UNAWARE
        self._present = False
        self._retry_atr = None
        log.info("card reader opened: %s", self._reader)

    def close(self) -> None:
        context, self._context = self._context, None
        self._reader = None
        if context is None:
            return
        try:
            self._scard.SCardReleaseContext(context)
        except Exception as exc:  # close must never raise; pcscd may be gone already
            log.warning("releasing the PC/SC context: %s", exc)

    def read(self, timeout: float) -> CardRead | None:
        if self._context is None or self._reader is None:
            raise ReaderError(f"PC/SC reader {self.name!r} is not open")
        scard = self._scard
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if self._retry_atr is not None:
                remaining = min(remaining, RETRY_S)  # a failed read is tried again soon, change or not
            hresult, states = scard.SCardGetStatusChange(
                self._context, int(remaining * 1000), [(self._reader, self._state)]
            )
            card: CardRead | None = None
            if _u32(hresult) == _u32(scard.SCARD_E_TIMEOUT):
                if self._retry_atr is not None:
                    card = self._attempt(self._retry_atr)
            elif _u32(hresult) != _u32(scard.SCARD_S_SUCCESS):
                raise ReaderError(f"card reader {self._reader!r} failed: {self._message(hresult)}")
            else:
                card = self._on_change(states[0][1], bytes(states[0][2]))
            if card is not None:
                return card
            if time.monotonic() >= deadline:
                return None

    # --- internals ------------------------------------------------------------------------------

    def _on_change(self, event: int, atr: bytes) -> CardRead | None:
        """Follow the reader's new state; read the card if one has just arrived."""
        scard = self._scard
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE):
            raise ReaderError(f"card reader {self._reader!r} is gone")
        previous, self._state = self._state, event & ~scard.SCARD_STATE_CHANGED
        if not event & scard.SCARD_STATE_PRESENT:
            self._present = False
            self._retry_atr = None
            self._last = None  # the reader is empty: the next card is a new presentation
            return None
        # pcsc-lite counts insertions/removals in the high word: a change there while a card stays
        # "present" means one was taken away and another (or the same) put down in between.
        swapped = self._present and (event >> 16) != (previous >> 16)
        if self._present and not swapped:
            return None
        if swapped:
            self._last = None
        self._present = True
        self._attempts = 0
        self._retry_atr = None
        if event & scard.SCARD_STATE_MUTE:
            log.info("a card on the reader does not answer (mute)")
            return None
        return self._attempt(atr)

    def _attempt(self, atr: bytes) -> CardRead | None:
        """One try at reading the card on the reader; a failed try is repeated a few times while it stays."""
        self._attempts += 1
        self._retry_atr = None
        card = self._read_card(atr)
        if card is None:
            if self._attempts < READ_ATTEMPTS:
                self._retry_atr = atr
            else:
                log.warning("a card on the reader could not be read (%d tries)", self._attempts)
            return None
        identity = f"{card.tech}:{'random' if card.random_id else card.uid}"
        if identity == self._last:
            log.debug("the same card is still on the reader (not a new tap)")
            return None
        self._last = identity
        log.info("card read: %s%s", card.tech, " (random ID)" if card.random_id else "")
        log.debug("card read: %s %s", card.tech, card.uid)
        return card

    def _read_card(self, atr: bytes) -> CardRead | None:
        """Connect, GET DATA, disconnect: the card, or None when the card (not the reader) failed."""
        scard = self._scard
        hresult, handle, protocol = scard.SCardConnect(
            self._context, self._reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if _u32(hresult) != _u32(scard.SCARD_S_SUCCESS):
            self._card_or_reader_error("connecting to the card", hresult)
            return None
        try:
            uid = self._get_uid(handle, protocol)
        finally:
            hresult = scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
            if _u32(hresult) != _u32(scard.SCARD_S_SUCCESS):
                log.debug("disconnecting from the card: %s", self._message(hresult))
        if uid is None:
            return None
        tech = tech_of(atr, uid)
        if tech is None:
            return None
        return CardRead.from_bytes(tech, uid)

    def _get_uid(self, handle: Any, protocol: int) -> bytes | None:
        scard = self._scard
        apdu = list(GET_DATA_UID)
        for _ in range(2):  # a second time only when the reader asks for another Le (6C XX)
            hresult, response = scard.SCardTransmit(handle, protocol, apdu)
            if _u32(hresult) != _u32(scard.SCARD_S_SUCCESS):
                self._card_or_reader_error("GET DATA", hresult)
                return None
            if len(response) < 2:
                log.warning("GET DATA: short answer %s", bytes(response).hex().upper())
                return None
            data, sw1, sw2 = bytes(response[:-2]), response[-2], response[-1]
            if (sw1, sw2) == SW_OK and data:
                return data
            if sw1 == 0x6C:
                apdu[4] = sw2
                continue
            log.warning("the reader could not give the card's ID (GET DATA answered %02X%02X)", sw1, sw2)
            return None
        return None

    def _card_or_reader_error(self, what: str, hresult: int) -> None:
        """Log a card's failure; raise ReaderError for the reader's or pcscd's."""
        scard = self._scard
        card_faults = {
            _u32(scard.SCARD_W_REMOVED_CARD),
            _u32(scard.SCARD_E_NO_SMARTCARD),
            _u32(scard.SCARD_W_UNRESPONSIVE_CARD),
            _u32(scard.SCARD_W_UNPOWERED_CARD),
            _u32(scard.SCARD_W_UNSUPPORTED_CARD),
            _u32(scard.SCARD_W_RESET_CARD),
            _u32(scard.SCARD_E_PROTO_MISMATCH),
            _u32(scard.SCARD_E_NOT_TRANSACTED),
        }
        if _u32(hresult) in card_faults:
            log.info("a card could not be read (%s: %s)", what, self._message(hresult))
            return
        raise ReaderError(f"card reader {self._reader!r} failed ({what}): {self._message(hresult)}")

    def _message(self, hresult: int) -> str:
        try:
            return f"{self._scard.SCardGetErrorMessage(hresult)} (0x{_u32(hresult):08X})"
        except Exception:
            return f"0x{_u32(hresult):08X}"
