"""The update signing key: made once at provisioning, kept by the operator, its public half on every gate.

``genba-provision update-key --out DIR`` writes ``update_key.pem`` (the ed25519 private key, PKCS#8,
0600: whoever holds it can run code on every gate) and ``update_key.pub`` (the public key, PEM,
0644), which goes to each gate as /etc/genbagate/update_key.pub. The operator signs bundles with
``genba-server update sign --key DIR/update_key.pem``. An existing key is never overwritten: a new key
would make every gate refuse every later update.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provisioning.errors import ProvisionError
from provisioning.passwd import write_private

PRIVATE_NAME = "update_key.pem"
PUBLIC_NAME = "update_key.pub"


@dataclass(frozen=True)
class UpdateKeyFiles:
    private: Path
    public: Path


def make_update_key(out: Path) -> UpdateKeyFiles:
    """Create the key pair in ``out``; refuse (ProvisionError) when a private key is already there."""
    out = Path(out)
    private, public = out / PRIVATE_NAME, out / PUBLIC_NAME
    if private.exists():
        raise ProvisionError("update_key_exists",
                             f"更新の署名鍵 {private} はもうあります。作り直すと、すべてのゲートが以後の更新を拒みます。"
                             "本当に作り直すときは古い鍵を別の場所に移してから実行してください。",
                             f"update signing key {private} already exists; not overwritten")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_private(private, pem, mode=0o600)
    write_private(public, pub, mode=0o644)
    return UpdateKeyFiles(private=private, public=public)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register ``update-key`` under genba-provision's subcommands."""
    sp: argparse.ArgumentParser = subparsers.add_parser("update-key", help="ゲートのソフトウェア更新に署名する鍵を作る（一度だけ）",
                               description="ed25519 の署名鍵（update_key.pem、0600）と公開鍵（update_key.pub）を --out に"
                                           "書きます。公開鍵は各ゲートの /etc/genbagate/update_key.pub に置きます。")
    sp.add_argument("--out", type=Path, required=True, metavar="DIR", help="鍵を書くフォルダー")
    sp.set_defaults(func=cmd_update_key)
    return sp


def cmd_update_key(args: argparse.Namespace) -> int:
    files = make_update_key(args.out)
    print(f"署名鍵: {files.private}（0600。外に出さないでください）")
    print(f"公開鍵: {files.public}（各ゲートの /etc/genbagate/update_key.pub へ）")
    return 0
