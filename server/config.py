"""The server's configuration: a TOML file, every key checked, unknown keys refused.

    database_url = "sqlite:////var/lib/genbagate/genba.db"   # or postgresql+psycopg://user@host/db
    [http]
    host = "127.0.0.1"
    port = 8080
    [auth]
    token_ttl_hours = 12
    max_failed_logins = 10       # wrong passwords per login ID and address before each further try waits
    lock_minutes = 15            # the longest such wait (1 s, 2 s, 4 s … up to this)
    [reports]
    site_fee_per_worker_day = 10 # CCUS 現場利用料 per 人日, in yen (the 元請's monthly estimate)
    [mqtt]                       # the gates' broker; enabled = false runs the HTTP API alone
    host = "localhost"
    port = 1883
    username = "genba-server"    # with password = "..." when the broker asks for one
    client_id = "genba_ingest"   # one per ingest process; never a possible gate id (it has "_")
    share_group = "genba-ingest-…"   # the ingests' $share group (random from genba-provision broker-config)

``GENBA_DATABASE_URL`` overrides database_url (for containers and CI).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from protocol.topics import DEVICE_ID
from server.errors import InvalidInput


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class AuthConfig(Strict):
    """Logins. Wrong passwords are counted per login ID and client address: after
    ``max_failed_logins`` of them each further try from that address waits 1 s, 2 s, 4 s … up to
    ``lock_minutes`` (the names are from when the ID was locked outright, which let anyone lock it)."""

    token_ttl_hours: float = Field(12, gt=0, le=24 * 30)
    max_failed_logins: int = Field(10, ge=3, le=100)
    lock_minutes: float = Field(15, gt=0, le=24 * 60)


class ReportsConfig(Strict):
    """The 帳票. ``site_fee_per_worker_day``: what CCUS charges the 元請 per 人日 (現場利用料), for the
    monthly estimate; change it when CCUS revises its fees."""

    site_fee_per_worker_day: int = Field(10, ge=0, le=10_000)


class MqttConfig(Strict):
    """The broker the gates publish to. ``client_id`` names this server's persistent session: two
    ingest processes need two names (they share the taps through the shared subscription)."""

    enabled: bool = True
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # TLS when set (port 8883 usually)
    client_id: str = Field("genba_ingest", min_length=1, max_length=64)
    # The ingest's shared-subscription group. broker-config makes it random: Mosquitto 2.0 lets any
    # client join any $share group, and a gate in the ingest's group would be handed (and lose) a
    # share of every gate's taps. A name the gates cannot guess keeps them out.
    share_group: str = Field("genba-ingest", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    keepalive_s: int = Field(30, ge=5, le=600)
    config_debounce_s: float = Field(2.0, ge=0, le=300)  # roster push: wait for edits to settle

    @field_validator("client_id")
    @classmethod
    def _not_a_gate(cls, v: str) -> str:
        """Client ids are one namespace across the broker's listeners: a gate may be called anything
        a device id allows, so a server whose client id is a possible device id can be kicked off by
        the gate of that name. An underscore makes it impossible (protocol.topics.DEVICE_ID)."""
        if DEVICE_ID.fullmatch(v):
            raise ValueError(f"client_id {v!r} could be a gate's device id: give it an underscore (genba_ingest_2)")
        return v

    @field_validator("ca_file")
    @classmethod
    def _exists(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no CA file at {v}")
        return v


class ServerConfig(Strict):
    database_url: str = "sqlite:///genba.db"
    http: HttpConfig = HttpConfig()
    auth: AuthConfig = AuthConfig()
    reports: ReportsConfig = ReportsConfig()
    mqtt: MqttConfig = MqttConfig()

    @field_validator("database_url")
    @classmethod
    def _supported(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith("postgresql+psycopg://")):
            raise ValueError("use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        return v


def load(path: str | Path | None) -> ServerConfig:
    """Read and check the file; a bad file is an InvalidInput naming the key, never a traceback."""
    data: dict[str, object] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(
                "config_not_found", ja=f"設定ファイルがありません: {p}", en=f"no config file at {p}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(
                "config_syntax", ja=f"設定ファイルの書式が正しくありません: {exc}", en=f"bad TOML in {p}: {exc}"
            ) from None
    if os.environ.get("GENBA_DATABASE_URL"):
        data["database_url"] = os.environ["GENBA_DATABASE_URL"]
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(
            "config_invalid", ja=f"設定ファイルの値が正しくありません: {problems}", en=f"invalid config: {problems}"
        ) from None
