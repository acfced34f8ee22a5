"""The broker's ACL: who may publish and subscribe to what (Mosquitto 2.0 ``acl_file`` syntax).

The security model in one table (DESIGN.md, "Security model"):

| account | publishes | subscribes |
| --- | --- | --- |
| a gate (username = its device id) | its own ``tap`` and ``status`` | its own ``ack``, ``config``, ``cmd`` |
| a server account (``genba_server``…) | every gate's ``ack``, ``config``, ``cmd`` | every gate's ``tap`` and ``status`` |

``pattern`` lines apply to every account with ``%u`` replaced by the username, so a gate's rights
follow from its name and adding a gate never edits this file. Server account names contain an
underscore, which a device id cannot (``protocol.topics.DEVICE_ID``): no gate can be called
``genba_server`` and no server account matches a gate's topics through a pattern. The server's
rights are listed per account (``user`` blocks) because they span every gate.

Mosquitto 2.0.11 grants every SUBSCRIBE (wildcards, ``$share/…``, other gates' topics) and checks
read access on each message it would deliver, retained ones included: a gate may hold a
subscription to ``#`` and never receive anything through it (tests/integration/test_broker_security.py).
"""

from __future__ import annotations

from protocol.topics import PREFIX

GATE_WRITES = ("tap", "status")
GATE_READS = ("ack", "config", "cmd")


def render_acl(server_accounts: list[str]) -> str:
    lines = [
        "# GenbaGate broker ACL, written by `genba-provision broker-config`; regenerate rather than edit.",
        "# Nothing here names a gate: every gate's rights follow from its username (= its device id).",
        "",
    ]
    for account in sorted(server_accounts):
        lines.append(f"user {account}")
        for kind in GATE_WRITES:
            lines.append(f"topic read {PREFIX}/+/{kind}")
        for kind in GATE_READS:
            lines.append(f"topic write {PREFIX}/+/{kind}")
        lines.append("")
    lines.append("# Every account below this line: its own topics only (%u = the username = the device id).")
    for kind in GATE_WRITES:
        lines.append(f"pattern write {PREFIX}/%u/{kind}")
    for kind in GATE_READS:
        lines.append(f"pattern read {PREFIX}/%u/{kind}")
    return "\n".join(lines) + "\n"
