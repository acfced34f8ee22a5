"""genba-provision: from a blank SD card to a locked-down gate online at its site.

    genba-provision broker-config --out /etc/genbagate/broker --host broker.genba.example
    genba-provision device add --site 40224614116771 --name 正門ゲート --direction in --wifi-ssid GENBA-AP
    genba-provision wheels --out /var/cache/genbagate/wheels
    genba-provision flash --image raspios.img --bundle bundle-40224614116771-01 --wheels /var/cache/genbagate/wheels
    genba-provision device rotate 40224614116771-01      # new password, new bundle (re-flash the card)
    genba-provision device retire 40224614116771-01      # cut off at once, taps refused from now on

Secrets are never taken on the command line (the process list shows it to every user): the server
password comes from GENBA_PASSWORD or a prompt, the Wi-Fi passphrase from --wifi-psk-file,
GENBA_WIFI_PSK or a prompt. Files that hold secrets are written 0600.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from provisioning import gates, update_keys
from provisioning.broker import DEBIAN_PID_FILE, DEFAULT_DIR, BrokerDir, BrokerSettings
from provisioning.bundle import Network
from provisioning.errors import ProvisionError
from provisioning.server_client import ServerClient


def _secret(env: str, prompt: str, file: str | None = None, required: bool = True) -> str | None:
    if file:
        return Path(file).read_text(encoding="utf-8").rstrip("\r\n")  # the line ending only: spaces are the secret's
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        if not required:
            return None
        raise ProvisionError("secret_required", f"{prompt}を環境変数 {env} で渡すか、端末から実行してください",
                             f"set {env} or run from a terminal")
    return getpass.getpass(f"{prompt}: ")


def _broker(args: argparse.Namespace) -> BrokerDir:
    return BrokerDir(Path(args.broker_dir or os.environ.get("GENBA_BROKER_DIR") or DEFAULT_DIR))


def _server(args: argparse.Namespace) -> ServerClient | None:
    if args.no_server:
        return None
    login = args.login or os.environ.get("GENBA_LOGIN")
    if not login:
        raise ProvisionError("login_required", "--login に元請のID（事業者責任者・階層管理者・現場管理者）を指定してください",
                             "give --login (the 元請's ID)")
    client = ServerClient(args.server or os.environ.get("GENBA_SERVER") or "http://127.0.0.1:8080")
    client.login(login, _secret("GENBA_PASSWORD", f"{login} のパスワード") or "")
    return client


def _network(args: argparse.Namespace, required: bool = True) -> Network | None:
    if not args.wifi_ssid and not args.ethernet and not args.address:
        if required:
            raise ProvisionError("network_required", "ネットワークを指定してください: --wifi-ssid SSID または --ethernet",
                                 "give --wifi-ssid SSID or --ethernet")
        return None
    psk = None
    if args.wifi_ssid:
        psk = _secret("GENBA_WIFI_PSK", f"Wi-Fi {args.wifi_ssid} のパスフレーズ", args.wifi_psk_file)
    return Network(wifi_ssid=args.wifi_ssid, wifi_psk=psk, country=args.country, address=args.address,
                   gateway=args.gateway, dns=tuple(args.dns or ()))


def cmd_broker_config(args: argparse.Namespace) -> int:
    broker = BrokerDir(Path(args.out))
    old = broker.settings() if broker.exists() else None
    settings = BrokerSettings(
        gate_host=args.host or (old.gate_host if old else ""),
        gate_port=args.port or (old.gate_port if old else 8883),
        gate_bind=args.bind if args.bind is not None else (old.gate_bind if old else ""),
        server_host=args.server_host or (old.server_host if old else "127.0.0.1"),
        server_port=args.server_port or (old.server_port if old else 8884),
        server_bind=args.server_bind if args.server_bind is not None else (old.server_bind if old else "127.0.0.1"),
        pid_file=args.pid_file or (old.pid_file if old else DEBIAN_PID_FILE),
        extra_names=args.name or (old.extra_names if old else []),
        server_accounts=old.server_accounts if old else ["genba_server"],
    )
    if not settings.gate_host:
        raise ProvisionError("host_required", "--host にゲートから見たブローカーのホスト名かIPアドレスを指定してください",
                             "give --host (the broker's name as the gates reach it)")
    made = broker.create(settings, renew_certificate=args.renew_certificate)
    print(f"ブローカー設定を書きました: {broker.path}")
    print(f"  ゲート用: {settings.gate_url}（TLS、ゲートごとのアカウント、ACL）")
    print(f"  サーバー用: mqtts://{settings.server_host}:{settings.server_port}（{settings.server_bind or '全インターフェース'}）")
    if made:
        print(f"  サーバーのアカウントを作りました: {broker.server_mqtt} を server.toml の [mqtt] に写してください")
    print("次に（Debian の Mosquitto）:")
    print(f"  ln -sf {broker.dropin} /etc/mosquitto/conf.d/genbagate.conf && systemctl restart mosquitto")
    return 0


def cmd_device_add(args: argparse.Namespace) -> int:
    broker = _broker(args)
    broker.settings()  # before asking for passwords: the broker folder must exist
    network = _network(args)
    assert network is not None
    server = _server(args)
    result = gates.add(broker, server, site=args.site, name=args.name, direction=args.direction, network=network,
                       out=Path(args.out) if args.out else None, device_id=args.id, location=args.location,
                       reader=args.reader, reload=not args.no_reload)
    print(f"ゲート {result['device_id']} を登録しました（{args.name}、{args.direction}）")
    print(f"  バンドル: {result['bundle'].path}（パスワードを含みます。書き込み後は削除してください）")
    print(f"  次: genba-provision flash --image raspios.img --bundle {result['bundle'].path} --wheels WHEELS")
    if result["reloaded"] is None:
        print("  ブローカーは再読み込みしていません: systemctl reload mosquitto を実行してください")
    return 0


def cmd_device_rotate(args: argparse.Namespace) -> int:
    broker = _broker(args)
    network = _network(args, required=False)
    psk = None
    if network is None:
        rec = gates.GateRecord.load(broker.path / "gates" / f"{args.device_id}.toml") \
            if (broker.path / "gates" / f"{args.device_id}.toml").exists() else None
        if rec and rec.network.wifi_ssid:
            psk = _secret("GENBA_WIFI_PSK", f"Wi-Fi {rec.network.wifi_ssid} のパスフレーズ", args.wifi_psk_file)
    out = Path(args.out or f"bundle-{args.device_id}")
    result = gates.rotate(broker, args.device_id, out=out, network=network, wifi_psk=psk, reload=not args.no_reload)
    print(f"ゲート {args.device_id} のパスワードを新しくしました。古いパスワードはもう使えません")
    print(f"  新しいバンドル: {result['bundle'].path}（カードに書き込み直してください）")
    return 0


def cmd_device_retire(args: argparse.Namespace) -> int:
    broker = _broker(args)
    broker.settings()
    try:
        server = _server(args)
        server_problem = None
    except ProvisionError as exc:  # revoking must not wait for the server: say so, and go on
        server, server_problem = None, exc
    result = gates.retire(broker, server, args.device_id, reload=not args.no_reload)
    if result["broker_account_removed"]:
        print(f"ゲート {args.device_id} のブローカーアカウントを削除しました。もう接続できません")
    else:
        print(f"ゲート {args.device_id} のブローカーアカウントはありませんでした")
    problem = result["server_error"] or server_problem
    if result["server"] is not None:
        print(f"サーバーでゲート {args.device_id} を退役させました（以後のタップは受け付けません）")
        return 0
    if args.no_server:
        print("サーバーでは退役していません（--no-server）。元請の画面から退役させてください")
        return 0
    print(f"サーバーでの退役はできませんでした: {problem.message if problem else '不明'}\n"
          "接続はすでに止まっています。サーバーが動いてから、もう一度このコマンドか元請の画面で退役させてください",
          file=sys.stderr)
    return 1


def cmd_device_list(args: argparse.Namespace) -> int:
    rows = gates.listing(_broker(args))
    if not rows:
        print("ゲートはまだありません")
    for r in rows:
        print(f"{r['device_id']:<24} {r['site'] or '-':<15} {r['direction'] or '-':<5} {r['network'] or '-':<16} {r['name']}")
    return 0


def cmd_wheels(args: argparse.Namespace) -> int:
    from provisioning import wheels

    target = wheels.Target.native() if args.native else wheels.Target.pi(args.release)
    made = wheels.build(Path(args.out), target, Path(args.source) if args.source else None)
    size = sum(p.stat().st_size for p in made)
    where = "この機械用" if args.native else f"Raspberry Pi OS {args.release} 用（aarch64、Python {target.python}）"
    print(f"ホイール {len(made)} 個（{size >> 20} MB）を {args.out} にそろえました: {where}")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from provisioning.bundle import Bundle
    from provisioning.flash import flash

    keys: list[str] = []
    for f in args.ssh_key or []:
        keys += [k.strip() for k in Path(f).read_text(encoding="utf-8").splitlines() if k.strip()]
    result = flash(Path(args.image), Bundle(Path(args.bundle)), Path(args.wheels),
                   out=Path(args.out) if args.out else None, os_release=args.os, ssh_keys=keys,
                   update_key=Path(args.update_key) if args.update_key else None)
    print(f"{result['image']} にゲート {result['device_id']} を書き込みました"
          f"（{'cloud-init' if result['os'] == 'trixie' else 'firstrun.sh'}、{result['network']}、"
          f"ホイール {result['wheels']} 個）")
    print("次: カードを Pi に挿して設置し、電源を入れてください。初回起動で自動的に設定と点検をします（数分）。")
    print(f"     バンドル {args.bundle}" + (f" と {result['image']}" if args.out else "")
          + " にはパスワードが入っています。カードに書き込んだら削除してください。")
    return 0


def _add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="GenbaGate サーバーのURL（既定 http://127.0.0.1:8080、または GENBA_SERVER）")
    p.add_argument("--login", help="元請のID（パスワードは GENBA_PASSWORD か入力）")
    p.add_argument("--no-server", action="store_true", help="サーバーには登録しない（ブローカーだけ）")


def _add_broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker-dir", help=f"broker-config で作ったフォルダ（既定 {DEFAULT_DIR}、または GENBA_BROKER_DIR）")
    p.add_argument("--no-reload", action="store_true", help="ブローカーを再読み込みしない（後で systemctl reload mosquitto）")


def _add_network_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ネットワーク（ゲートの接続方法）")
    g.add_argument("--wifi-ssid", help="Wi-Fi の SSID（パスフレーズは --wifi-psk-file、GENBA_WIFI_PSK、または入力）")
    g.add_argument("--wifi-psk-file", help="Wi-Fi のパスフレーズを1行で書いたファイル")
    g.add_argument("--ethernet", action="store_true", help="有線LAN（eth0）")
    g.add_argument("--country", default="JP", help="Wi-Fi の国コード（既定 JP）")
    g.add_argument("--address", help="固定アドレス 192.168.10.21/24（省略時は DHCP）")
    g.add_argument("--gateway", help="固定アドレスのときのゲートウェイ")
    g.add_argument("--dns", action="append", help="DNS サーバー（繰り返し可）")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genba-provision",
        description="ゲートの準備: ブローカーの設定、ゲートの登録と資格情報、SDカードへの書き込み。",
        epilog="順番: broker-config（一度）→ device add → wheels（一度）→ flash → ゲートを設置して電源を入れる。",
    )
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("broker-config", help="Mosquitto の設定（TLS、パスワード、ACL）を作る・更新する",
                        description="TLS の認証局と証明書、ゲート用とサーバー用のパスワードファイル、ACL、"
                                    "Mosquitto の設定ファイルを --out に書きます。繰り返し実行しても既存のアカウントは残ります。")
    sp.add_argument("--out", required=True, help="書き出すフォルダ（例 /etc/genbagate/broker）")
    sp.add_argument("--host", help="ゲートから見たブローカーのホスト名またはIPアドレス（証明書に入ります）")
    sp.add_argument("--port", type=int, help="ゲート用 TLS ポート（既定 8883）")
    sp.add_argument("--bind", help="ゲート用リスナーのアドレス（既定: すべて）")
    sp.add_argument("--server-host", help="サーバーから見たブローカーのホスト名（既定 127.0.0.1）")
    sp.add_argument("--server-port", type=int, help="サーバー用 TLS ポート（既定 8884）")
    sp.add_argument("--server-bind", help="サーバー用リスナーのアドレス（既定 127.0.0.1）")
    sp.add_argument("--name", action="append", help="証明書に加える別名・アドレス（繰り返し可）")
    sp.add_argument("--pid-file", help=f"再読み込みに使う Mosquitto の PID ファイル（既定 {DEBIAN_PID_FILE}）")
    sp.add_argument("--renew-certificate", action="store_true", help="ブローカーの証明書を作り直す（認証局はそのまま）")
    sp.set_defaults(func=cmd_broker_config)

    dev = sub.add_parser("device", help="ゲートの登録・パスワード更新・退役・一覧").add_subparsers(
        dest="device_command", required=True)
    sp = dev.add_parser("add", help="ゲートをサーバーに登録し、資格情報とバンドルを作る",
                        description="元請のIDでサーバーにゲートを登録し、ブローカーのアカウントを作り、"
                                    "SDカードに書き込むバンドル（設定・パスワード・CA証明書・ネットワーク）を作ります。")
    sp.add_argument("--site", required=True, help="現場ID（14桁）")
    sp.add_argument("--name", required=True, help="ゲートの表示名（例 正門ゲート）")
    sp.add_argument("--direction", required=True, choices=["in", "out", "auto"], help="in 入場 / out 退場 / auto 自動判定")
    sp.add_argument("--id", help="デバイスID（省略時は 現場ID-01 のように自動）")
    sp.add_argument("--location", help="現場内の設置場所")
    sp.add_argument("--reader", default="usb", help="カードリーダー（usb、tty:AMA0:pn532 など。既定 usb）")
    sp.add_argument("--out", help="バンドルのフォルダ（既定 ./bundle-デバイスID）")
    _add_server_args(sp)
    _add_broker_args(sp)
    _add_network_args(sp)
    sp.set_defaults(func=cmd_device_add)

    sp = dev.add_parser("rotate", help="ゲートのパスワードを新しくし、バンドルを作り直す（古いものは即無効）")
    sp.add_argument("device_id")
    sp.add_argument("--out", help="新しいバンドルのフォルダ（既定 ./bundle-デバイスID）")
    _add_broker_args(sp)
    _add_network_args(sp)
    sp.set_defaults(func=cmd_device_rotate)

    sp = dev.add_parser("retire", help="ゲートを退役させる（サーバーで退役、ブローカーから即切断）")
    sp.add_argument("device_id")
    _add_server_args(sp)
    _add_broker_args(sp)
    sp.set_defaults(func=cmd_device_retire)

    sp = dev.add_parser("list", help="このブローカーのゲート")
    _add_broker_args(sp)
    sp.set_defaults(func=cmd_device_list)

    sp = sub.add_parser("wheels", help="ゲートのソフトウェア一式（ホイール）をそろえる（初回起動はネット不要）",
                        description="GenbaGate とその依存パッケージを Raspberry Pi 用のホイールとして --out に集めます。"
                                    "flash はこれをブートパーティションに書き込みます。")
    sp.add_argument("--out", required=True, help="ホイールを置くフォルダ")
    sp.add_argument("--release", default="trixie", choices=["trixie", "bookworm"],
                    help="Raspberry Pi OS のリリース（trixie = Python 3.13、bookworm = 3.11。既定 trixie）")
    sp.add_argument("--native", action="store_true", help="この機械用（試験用）")
    sp.add_argument("--source", help="GenbaGate のソースフォルダ（既定: このインストール元）")
    sp.set_defaults(func=cmd_wheels)

    sp = sub.add_parser("flash", help="Raspberry Pi OS のイメージ（またはカード）にゲートのバンドルを書き込む",
                        description="ブートパーティション（FAT）に、バンドル・ホイール・初回起動の設定（cloud-init "
                                    "または firstrun.sh）を書き込みます。root もマウントも不要です。")
    sp.add_argument("--image", required=True, help="Raspberry Pi OS のイメージ（.img、.img.xz）またはカードのデバイス（/dev/sdX）")
    sp.add_argument("--bundle", required=True, help="device add で作ったバンドルのフォルダ")
    sp.add_argument("--wheels", required=True, help="wheels で作ったフォルダ")
    sp.add_argument("--out", help="書き込んだイメージの出力先（省略時は --image をそのまま書き換え）")
    sp.add_argument("--os", default="auto", choices=["auto", "trixie", "bookworm"],
                    help="初回起動の方式（既定 auto: イメージから判断）")
    sp.add_argument("--ssh-key", action="append", help="保守用アカウント genba-admin の SSH 公開鍵ファイル（省略時はログイン不可）")
    sp.add_argument("--update-key", metavar="FILE",
                    help="更新の公開鍵 update_key.pub（genba-provision update-key で作成）。ゲートはこの鍵で署名された"
                    "更新だけを入れます（省略時は更新を受け付けません）")
    sp.set_defaults(func=cmd_flash)
    update_keys.add_parser(sub)  # genba-provision update-key
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ProvisionError as exc:
        print(f"エラー: {exc.message}\n({exc.code}: {exc.message_en})", file=sys.stderr)
        return 2
    except ValueError as exc:  # a device id that check_device_id refused
        print(f"エラー: デバイスIDは英小文字・数字・ハイフンの3〜63文字です（例 gate-01）\n({exc})", file=sys.stderr)
        return 2
    except OSError as exc:  # a file named on the command line that cannot be read or written
        print(f"エラー: ファイルを開けません: {exc.filename or ''}（{exc.strerror or exc}）\n({exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
