"""The operator's side of gate updates: sign a bundle, offer it to a gate over its own cmd topic.

``genba-server update sign --key update_key.pem --wheels DIR --version V --out BUNDLE`` copies the wheels
into BUNDLE, writes ``manifest.json`` (version, time, each wheel's SHA-256 and size) and
``manifest.sig`` (ed25519 over the manifest's canonical bytes, protocol/update.py). The operator then
serves BUNDLE over http(s) (any static file server, or the gates' own file share) and runs
``genba-server update send --device gate-01 --bundle BUNDLE --url https://…/BUNDLE``: a Command
``update`` (QoS 1, not retained: an update is an act, not a state) carrying the URL, the manifest and
its signature. The gate checks the signature before it downloads anything.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from protocol.errors import ProtocolError
from protocol.messages import Command, encode
from protocol.topics import topic
from protocol.update import (
    MANIFEST,
    SIGNATURE,
    ManifestFile,
    UpdateManifest,
    UpdateOffer,
    load_private_key,
    read_bundle_manifest,
    sign,
)
from server.config import MqttConfig
from server.errors import InvalidInput

PUBLISH_TIMEOUT_S = 15.0


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sign_bundle(key_file: Path, wheels: Path, version: str, out: Path,
                min_previous_version: str | None = None) -> UpdateManifest:
    """Make a signed bundle of every ``*.whl`` in ``wheels``. Refuses an existing ``out`` (a bundle
    is published once; a changed bundle is a new version)."""
    try:
        key = load_private_key(Path(key_file).read_bytes())
    except (OSError, ValueError, TypeError, ProtocolError) as exc:
        raise InvalidInput("update_key_unreadable", ja=f"署名鍵が読めません: {key_file}（{exc}）",
                           en=f"cannot read the signing key {key_file}: {exc}") from None
    files = sorted(Path(wheels).glob("*.whl"))
    if not files:
        raise InvalidInput("update_no_wheels", ja=f"{wheels} にホイール（*.whl）がありません",
                           en=f"no *.whl in {wheels}")
    if Path(out).exists():
        raise InvalidInput("update_bundle_exists", ja=f"{out} はもうあります。別のフォルダーを指定してください",
                           en=f"{out} exists")
    try:
        manifest = UpdateManifest(
            v=1, version=version, created_at=datetime.now(UTC), min_previous_version=min_previous_version,
            files=[ManifestFile(name=f.name, sha256=_sha256(f), size=f.stat().st_size) for f in files])
    except ValueError as exc:
        raise InvalidInput("update_manifest_invalid", ja=f"版またはファイル名が使えません: {exc}",
                           en=f"invalid version or wheel name: {exc}") from None
    tmp = Path(out).with_name(f".{Path(out).name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, tmp / f.name)
    (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=1) + "\n", encoding="utf-8")
    (tmp / SIGNATURE).write_text(sign(manifest, key) + "\n", encoding="ascii")
    tmp.rename(out)  # the bundle appears whole or not at all
    return manifest


def update_command(bundle: Path, url: str, command_id: str | None = None) -> Command:
    """The Command ``update`` that offers ``bundle`` (served at ``url``) to a gate."""
    try:
        manifest, signature = read_bundle_manifest(Path(bundle))
        return Command(id=command_id or uuid.uuid4().hex, name="update", issued_at=datetime.now(UTC),
                       update=UpdateOffer(url=url, manifest=manifest, signature=signature))
    except (OSError, ValueError) as exc:
        raise InvalidInput("update_bundle_invalid", ja=f"バンドルまたは URL が正しくありません: {exc}",
                           en=f"invalid bundle or URL: {exc}") from None


def send_update(cfg: MqttConfig, device_id: str, command: Command) -> None:
    """Publish the command to the gate's cmd topic with the server's broker account (QoS 1)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"{cfg.client_id}_update_{uuid.uuid4().hex[:8]}")
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.ca_file:
        client.tls_set(ca_certs=cfg.ca_file)
    try:
        client.connect(cfg.host, cfg.port)
        client.loop_start()
        info = client.publish(topic(device_id, "cmd"), encode(command), qos=1)
        info.wait_for_publish(PUBLISH_TIMEOUT_S)
        if not info.is_published():
            raise InvalidInput("update_not_sent", ja="ブローカーに送れませんでした",
                               en="the broker did not take the command")
    except OSError as exc:
        raise InvalidInput("update_not_sent", ja=f"ブローカーにつながりません: {exc}",
                           en=f"broker unreachable: {exc}") from None
    finally:
        client.disconnect()
        client.loop_stop()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register ``update sign|send`` under genba-server's subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "update", help="ゲートのソフトウェア更新: バンドルに署名する・ゲートに送る")
    sub = p.add_subparsers(dest="update_command", required=True, metavar="UPDATE_COMMAND")
    sp = sub.add_parser("sign", help="ホイール一式に署名してバンドルを作る")
    sp.add_argument("--key", type=Path, required=True, metavar="PRIVATE",
                    help="署名鍵（genba-provision update-key で作ったもの）")
    sp.add_argument("--wheels", type=Path, required=True, metavar="DIR", help="ホイール（*.whl）のフォルダー")
    sp.add_argument("--version", required=True, metavar="V", help="この更新の版（例 0.2.0）")
    sp.add_argument("--min-previous", metavar="V", help="この版以降のゲートにだけ入れる")
    sp.add_argument("--out", type=Path, required=True, metavar="BUNDLE", help="作るバンドルのフォルダー")
    sp.set_defaults(func=main)
    sp = sub.add_parser("send", help="バンドルの URL と署名をゲートのコマンドで送る")
    sp.add_argument("--config", metavar="FILE", help="サーバーの設定ファイル（ブローカーの接続先）")
    sp.add_argument("--device", required=True, help="ゲートのデバイスID")
    sp.add_argument("--bundle", type=Path, required=True, help="署名済みバンドルのフォルダー")
    sp.add_argument("--url", required=True, help="ゲートがバンドルを取りに行く URL（フォルダーの URL）")
    sp.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.update_command == "sign":
        m = sign_bundle(args.key, args.wheels, args.version, args.out, args.min_previous)
        print(f"バンドル {args.out}: 版 {m.version}、ホイール {len(m.files)} 個に署名しました。")
        return 0
    from server.config import load

    cmd = update_command(args.bundle, args.url)
    assert cmd.update is not None
    send_update(load(args.config).mqtt, args.device, cmd)
    print(f"{args.device} に版 {cmd.update.manifest.version} の更新を送りました（コマンド {cmd.id}）。")
    return 0
