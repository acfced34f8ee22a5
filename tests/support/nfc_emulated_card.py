"""A card held in front of nfcpy's emulated reader, for tests/unit/test_reader.py.

    python tests/support/nfc_emulated_card.py PORT TECH UID        (TECH: felica | iso14443a | iso14443b)

nfcpy's ``udp`` driver links two ContactlessFrontends through UDP on one address: the side that
*listens* (a card) binds 0.0.0.0:PORT, the side that *senses* (the reader) sends from an ephemeral
port to HOST:PORT and the card answers to whatever address the request came from. So this process
must be the one on PORT, and the gate's NfcpyReader("udp:127.0.0.1:PORT") finds it.

- FeliCa goes through nfcpy's own card emulation: ``connect(card=…)`` with a LocalTarget('212F')
  whose sensf_res is 01 + IDm + PMm + system code.
- ISO 14443 A and B have no tag emulation in nfcpy (nfc.tag.emulate knows only Type 3), so the card
  is answered at the level below: ``clf.listen()`` does the anticollision (A) or SENSB/ATTRIB
  hand-shake (B), then this script answers the few commands the reader sends: Type 2 READ for
  the presence check of a Type A card, ATTRIB and ISO-DEP R(NAK) presence checks for Type B.

Prints "ready" once the frontend is open. Exits when its stdin closes (the test ended or died).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading

import nfc
import nfc.clf

PMM = bytes.fromhex("0120220427674EFF")  # IC code 0x20: a FeliCa Standard chip
SYSTEM_CODE = bytes.fromhex("FE00")  # the FeliCa common area most cards carry
LISTEN_S = 60.0  # stay bound to the port; a re-bind gap could eat the reader's presence check


def emulate_felica(clf: nfc.ContactlessFrontend, idm: bytes) -> None:
    sensf_res = bytearray.fromhex("01") + idm + PMM + SYSTEM_CODE

    def on_startup(target: nfc.clf.LocalTarget) -> nfc.clf.LocalTarget:
        card = nfc.clf.LocalTarget("212F")
        card.sensf_res = sensf_res
        return card

    while True:
        clf.connect(card={"on-startup": on_startup, "on-connect": lambda tag: True, "timeout": LISTEN_S})


def type2_answer(memory: bytes):  # type: ignore[no-untyped-def]
    def answer(cmd: bytearray | None) -> bytes | None:
        if cmd and len(cmd) == 2 and cmd[0] == 0x30:  # READ: four pages from cmd[1]
            start = (cmd[1] * 4) % len(memory)
            return (memory + memory)[start : start + 16]
        return None  # anything else: stay silent, like a tag that does not know the command

    return answer


def type4b_answer(cmd: bytearray | None) -> bytes | None:
    if not cmd:
        return None
    if cmd[0] == 0x1D:  # ATTRIB: MBLI 0, CID 0
        return b"\x00"
    if cmd[0] & 0xF6 == 0xB2:  # R(NAK), nfcpy's presence check: R(ACK) with the same block number
        return bytes([0xA2 | (cmd[0] & 1)])
    if cmd[0] & 0xE2 == 0x02:  # an I-block (an APDU): "file not found"
        return bytes([0x02 | (cmd[0] & 1)]) + b"\x6a\x82"
    return None


def serve(clf: nfc.ContactlessFrontend, target: nfc.clf.LocalTarget, answer) -> None:  # type: ignore[no-untyped-def]
    """Listen to be activated, then answer commands until the reader switches its field off."""
    while True:
        activated = clf.listen(target, LISTEN_S)
        if activated is None:
            continue
        cmd = activated.tt2_cmd or activated.tt4_cmd
        while True:
            try:
                cmd = clf.exchange(answer(cmd), LISTEN_S)
            except nfc.clf.BrokenLinkError:  # RFOFF: the reader muted its field to sense again
                break
            except nfc.clf.CommunicationError:
                cmd = None


def emulate_type_a(clf: nfc.ContactlessFrontend, uid: bytes) -> None:
    target = nfc.clf.LocalTarget("106A")
    target.sens_res = bytearray([{4: 0x04, 7: 0x44, 10: 0x84}[len(uid)], 0x00])  # UID size bits
    target.sdd_res = bytearray(uid)
    target.sel_res = bytearray([0x00])  # a Type 2 tag (no ISO-DEP): nfcpy activates it without a command
    memory = uid[:3] + bytes([0x88 ^ uid[0] ^ uid[1] ^ uid[2]]) + uid[3:].ljust(12, b"\x00") + b"\xe1\x10\x06\x00"
    serve(clf, target, type2_answer(memory))


def emulate_type_b(clf: nfc.ContactlessFrontend, pupi: bytes) -> None:
    target = nfc.clf.LocalTarget("106B")
    # 50 | PUPI | application data | protocol info: 106 kbps only; FSCI 8 (256 bytes), ISO 14443-4;
    # FWI 11 (about 0.6 s), generous so a loaded test machine does not miss a presence check.
    target.sensb_res = bytearray(b"\x50" + pupi + b"\x00\x00\x00\x00" + b"\x00\x81\xb0")
    serve(clf, target, type4b_answer)


def main() -> None:
    port, tech, uid = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("NFC_CARD_DEBUG") else logging.INFO,
        format="card %(levelname)s %(name)s: %(message)s",
    )

    def exit_with_parent() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", port))  # fail loudly now: nfcpy would just retry a taken port forever
    clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{port}")
    print("ready", flush=True)
    try:
        {"felica": emulate_felica, "iso14443a": emulate_type_a, "iso14443b": emulate_type_b}[tech](clf, uid)
    finally:
        clf.close()


if __name__ == "__main__":
    main()
