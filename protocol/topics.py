"""Topic names, one device each. The broker's ACL lets a device touch only its own subtree."""

from __future__ import annotations

import re
from typing import Literal

PREFIX = "genba/v1/devices"
Kind = Literal["tap", "ack", "status", "config", "cmd"]
KINDS: tuple[Kind, ...] = ("tap", "ack", "status", "config", "cmd")

# Server side: more than one ingest worker shares the taps (MQTT 5 shared subscription).
SHARED_GROUP = "genba-ingest"
TAP_SUBSCRIPTION = f"$share/{SHARED_GROUP}/{PREFIX}/+/tap"


def tap_subscription(group: str = SHARED_GROUP) -> str:
    """The ingest's shared subscription; the group is a secret of the server's config on a
    provisioned broker (see server.config.MqttConfig.share_group)."""
    return f"$share/{group}/{PREFIX}/+/tap"
STATUS_SUBSCRIPTION = f"{PREFIX}/+/status"

DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,62}")
_TOPIC = re.compile(rf"{PREFIX}/({DEVICE_ID.pattern})/(tap|ack|status|config|cmd)")


def check_device_id(device_id: str) -> str:
    """Lower-case letters, digits and hyphens, 3 to 63 long: safe in a topic, a file name and a hostname."""
    if not DEVICE_ID.fullmatch(device_id or ""):
        raise ValueError(f"device_id must match {DEVICE_ID.pattern} (got {device_id!r})")
    return device_id


def topic(device_id: str, kind: Kind) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/{kind}"


def parse(topic_name: str) -> tuple[str, Kind] | None:
    """(device_id, kind) of one of our topics, or None for anything else."""
    m = _TOPIC.fullmatch(topic_name)
    if m is None:
        return None
    kind: Kind = m.group(2)  # type: ignore[assignment]
    return m.group(1), kind
