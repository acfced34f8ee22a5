"""A contactless card on vsmartcard's virtual reader (vpcd), for tests/integration/test_reader_pcsc.py.

    python tests/support/vpcd_card.py PORT ATR_HEX UID_HEX [--get-data-sw 6A81]

vpcd is the pcscd driver from Debian's vsmartcard-vpcd: in server mode (``DEVICENAME /dev/null:PORT``)
it listens on PORT, and a card is "on the reader" exactly while a client is connected to it. Every
message either way is a 2-byte big-endian length and a payload; from vpcd, a 1-byte payload is a
control code (0 power off, 1 power on, 2 reset: no answer; 4 ATR: answer the ATR) and anything
longer is a command APDU, answered with a response APDU.

Debian bookworm's python3-virtualsmartcard ships no ``vicc`` program, and its ISO 7816 card
answers the PC/SC pseudo-APDU GET DATA (class FF) with "class not supported". What a PC/SC
contactless reader such as the RC-S300 does is different: the *reader* answers ``FF CA 00 00 00``
with the card's IDm/UID and builds the ATR (PC/SC part 3) from the card's technology. This card
plays the card and that part of the reader together, which is all the gate's PcscReader sees.

Run as a script, the card stays on the reader until the process is killed (the test's way of
pulling it away abruptly) or its stdin closes. In-process, ``VirtualCard`` does the same on a thread.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import sys
import threading

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4

# PC/SC part 3 ATRs of a storage card seen by a contactless reader: 3B 8F 80 01, then the
# historical bytes 80 4F 0C + RID A0 00 00 03 06 + standard (SS) + card name (C0 C1) + 4 RFU
# bytes, then the check byte TCK (xor of T0..the last historical byte).
PCSC_RID = bytes.fromhex("A000000306")


def contactless_atr(standard: int, name: int) -> bytes:
    """The ATR a PC/SC reader builds for a storage card: SS 0x11 = FeliCa, 0x03 = ISO 14443-A part 3."""
    body = bytes([0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C]) + PCSC_RID + bytes([standard]) + name.to_bytes(2, "big")
    body += bytes(4)
    tck = 0
    for b in body:
        tck ^= b
    return bytes([0x3B]) + body + bytes([tck])


def iso14443_4_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader builds for an ISO 14443-4 (ISO-DEP) card: 3B 8n 80 01 + historical + TCK."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return bytes([0x3B]) + body + bytes([tck])


FELICA_ATR = contactless_atr(0x11, 0x003B)  # what the RC-S300 gives for a FeliCa card (…11 00 3B…)
MIFARE_1K_ATR = contactless_atr(0x03, 0x0001)  # ISO 14443-A part 3, MIFARE Classic 1K
# An ISO 14443-B card: historical bytes = ATQB application data (4) + protocol info (3) + MBLI/CID.
TYPE_B_ATR = iso14443_4_atr(bytes.fromhex("0000000000817100"))


class VirtualCard:
    """One card presented on vpcd's port: ``insert()`` connects (the card arrives), ``remove()`` closes."""

    def __init__(self, port: int, atr: bytes, uid: bytes, *, get_data_sw: bytes | None = None,
                 fail_first: int = 0, host: str = "127.0.0.1") -> None:
        self.port = port
        self.atr = atr
        self.uid = uid
        self.get_data_sw = get_data_sw  # a status word instead of the UID: a reader that cannot read it
        self.fail_first = fail_first  # this many GET DATAs fail (6F00) first: a card at the field's edge
        self.host = host
        self.apdus: list[bytes] = []  # every command APDU received, for the test to look at
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def insert(self) -> None:
        if self._sock is not None:
            raise RuntimeError("card already on the reader")
        self._sock = socket.create_connection((self.host, self.port), timeout=10)
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self.serve, args=(self._sock,), name="vpcd-card", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):  # vpcd may have closed it first
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def answer(self, apdu: bytes) -> bytes:
        """The response APDU: the UID for GET DATA (FF CA 00 00 Le), an error status for anything else."""
        self.apdus.append(apdu)
        if len(apdu) >= 4 and apdu[0] == 0xFF and apdu[1] == 0xCA:
            if apdu[2] != 0x00 or apdu[3] != 0x00:
                return b"\x6a\x81"  # P1=01 (historical bytes) and friends: not supported here
            if self.get_data_sw is not None:
                return self.get_data_sw
            if self.fail_first > 0:
                self.fail_first -= 1
                return b"\x6f\x00"  # no precise diagnosis: the exchange with the card failed
            le = apdu[4] if len(apdu) >= 5 else 0
            if le and le < len(self.uid):
                return bytes([0x6C, len(self.uid)])  # wrong length: PC/SC part 3 says 6C XX
            return self.uid + b"\x90\x00"
        if apdu[:1] == b"\xff":
            return b"\x6d\x00"  # a pseudo-APDU this reader does not know
        return b"\x6e\x00"  # a storage card has no ISO 7816 application: class not supported

    def serve(self, sock: socket.socket) -> None:
        """Answer vpcd until it or the test closes the connection."""
        try:
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    return
                (size,) = struct.unpack("!H", header)
                msg = _recv_exact(sock, size)
                if msg is None:
                    return
                if size == 1:
                    if msg[0] == CTRL_ATR:
                        _send(sock, self.atr)
                    continue  # power on/off, reset: no answer expected
                _send(sock, self.answer(msg))
        except OSError:
            return


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack("!H", len(payload)) + payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a virtual contactless card on vpcd")
    parser.add_argument("port", type=int)
    parser.add_argument("atr", type=bytes.fromhex)
    parser.add_argument("uid", type=bytes.fromhex)
    parser.add_argument("--get-data-sw", type=bytes.fromhex, default=None)
    args = parser.parse_args(argv)
    card = VirtualCard(args.port, args.atr, args.uid, get_data_sw=args.get_data_sw)
    card.insert()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us: the card yanked away)
    card.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
