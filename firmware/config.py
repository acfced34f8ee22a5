"""The gate's configuration: one TOML file, every key checked, unknown keys refused at start.

    device_id = "gate-01"
    broker_url = "mqtts://broker.example:8883"      # or mqtt://host:port
    ca_file = "/etc/genbagate/ca.pem"
    secrets_file = "/etc/genbagate/private/secrets.toml"   # default: private/secrets.toml next to this file
    data_dir = "/var/lib/genbagate"
    direction = "in"                                  # in | out | auto
    debounce_s = 5

    [pins]            # BCM numbers; `false` for a part the gate does not have
    led_red = 17
    led_green = 27
    led_blue = 22     # RGB LED; with led_amber instead, a three-colour tower
    buzzer = 18
    motion = 4
    direction_button = 23

    [voice]
    enabled = true
    volume = 0.8
    renderer = "pyttsx3"    # or "open_jtalk" where installed
    [voice.phrases]          # override the spoken (kana) form of a phrase
    entry = "にゅうじょうを きろくしました"

    [quiet_hours]
    start = "20:00"
    end = "06:00"

The broker's ``username`` and ``password`` live in the secrets file (0600, firmware/keystore.py) with the
gate's keys, not here: this file is readable by the gate's group and gets copied around. A config of an
older installation with ``username``/``password`` here still works; the gate logs a warning to move them.
What load() returns carries the credentials from the secrets file (they win over this file's).
"""

from __future__ import annotations

import logging
import tomllib
from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware import keystore
from firmware.errors import ConfigError
from protocol.topics import check_device_id

log = logging.getLogger("genba.config")
SECRETS_FILE = Path("private") / "secrets.toml"  # relative to the config file's folder


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pins(Strict):
    led_red: int | None = Field(17, ge=0, le=27)
    led_green: int | None = Field(27, ge=0, le=27)
    led_blue: int | None = Field(None, ge=0, le=27)
    led_amber: int | None = Field(22, ge=0, le=27)
    buzzer: int | None = Field(18, ge=0, le=27)
    motion: int | None = Field(4, ge=0, le=27)
    direction_button: int | None = Field(None, ge=0, le=27)
    direction_led: int | None = Field(None, ge=0, le=27)  # lit while the toggle says 退場 (out)

    @field_validator("*", mode="before")
    @classmethod
    def _absent(cls, v: object) -> object:
        """TOML has no null: `buzzer = false` says the gate has no buzzer."""
        return None if v is False else v

    @model_validator(mode="after")
    def _distinct(self) -> Pins:
        """Two parts on one pin would fail deep inside gpiozero at start; say which here."""
        used: dict[int, str] = {}
        for name, pin in self.model_dump().items():
            if name == "led_amber" and self.led_blue is not None:
                continue  # ignored when an RGB LED is configured (see firmware/feedback.py)
            if pin is not None and pin in used:
                raise ValueError(f"{name} and {used[pin]} are both on GPIO {pin}")
            if pin is not None:
                used[pin] = name
        return self


class Voice(Strict):
    enabled: bool = True
    volume: float = Field(0.8, ge=0.0, le=1.0)
    renderer: Literal["pyttsx3", "open_jtalk"] = "pyttsx3"
    player: str = "aplay"
    phrases: dict[str, str] = Field(default_factory=dict)  # phrase key → spoken (kana) form
    prompt_cooldown_s: float = Field(30, ge=0)
    prompt_after_tap_s: float = Field(10, ge=0)


class QuietHours(Strict):
    start: time | None = None
    end: time | None = None

    @model_validator(mode="after")
    def _both(self) -> QuietHours:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        return self


class GateConfig(Strict):
    device_id: str
    broker_url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    secrets_file: Path | None = None  # None: SECRETS_FILE next to the config file (load() fills it in)
    data_dir: Path = Path("/var/lib/genbagate")
    direction: Literal["in", "out", "auto"] = "auto"
    debounce_s: float = Field(5, ge=0, le=3600)
    # pcsc (RC-S300 via pcscd), pcsc:NAME, auto (PC/SC if present, else usb), or an nfcpy path:
    # usb, usb:054c:06c3, tty:AMA0:pn532, udp:host:port
    reader: str = "usb"
    retention_days: int = Field(30, ge=1, le=3650)
    ack_timeout_s: float = Field(10, gt=0, le=600)
    # The send window: unacknowledged taps in flight at once. Hundreds, so a backlog of thousands
    # drains in a few round trips of the server's batches after an outage; 500, the server's largest
    # batch (server/ingest.py BATCH): a smaller window left the server batches of ~70 taps in the drain
    # bench, each paying a batch's fixed cost.
    batch_size: int = Field(500, ge=1, le=1000)
    pins: Pins = Pins()
    voice: Voice = Voice()
    quiet_hours: QuietHours = QuietHours()

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, v: str) -> str:
        return check_device_id(v)

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError("use mqtt://HOST:PORT or mqtts://HOST:PORT")
        return v

    @model_validator(mode="after")
    def _files(self) -> GateConfig:
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ValueError(f"ca_file {self.ca_file} does not exist")
        return self

    @property
    def broker(self) -> tuple[str, int, bool]:
        """(host, port, tls)."""
        u = urlsplit(self.broker_url)
        tls = u.scheme == "mqtts"
        return u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls


def load(path: str | Path, *, secrets: bool = True) -> GateConfig:
    """The checked config at ``path``, with ``secrets_file`` resolved and, unless ``secrets`` is False (for
    commands that need no credentials and may run as an account that cannot read them), the broker
    credentials from that file. Raises ConfigError naming the key or file at fault."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no config file at {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        cfg = GateConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{p}: {problems}") from None
    secrets_file = p.parent / (cfg.secrets_file or SECRETS_FILE)  # an absolute secrets_file stays as it is
    cfg = cfg.model_copy(update={"secrets_file": secrets_file})
    return with_credentials(cfg, p) if secrets else cfg


def with_credentials(cfg: GateConfig, config_path: Path) -> GateConfig:
    """``cfg`` with the broker credentials of its secrets file. Credentials still in the TOML (an older
    installation) keep working where the secrets file has none, with a warning saying where they go."""
    assert cfg.secrets_file is not None
    values = keystore.read_secrets(cfg.secrets_file)
    in_toml = [k for k in ("username", "password") if getattr(cfg, k)]
    if in_toml:
        moved = all(values.get(k) for k in in_toml)
        log.warning("%s holds %s: %s. Move them to %s (0600, owned by the gate's account) and remove them "
                    "from %s", config_path, " and ".join(in_toml),
                    "the secrets file's are used" if moved else "used for now", cfg.secrets_file, config_path)
    update = {k: values[k] for k in ("username", "password") if values.get(k)}
    return cfg.model_copy(update=update) if update else cfg
