"""Signed gate updates: the manifest the operator signs, the offer the server sends, the check both share.

An update is a *bundle*: a folder with the wheels, ``manifest.json`` (this model) and ``manifest.sig``
(base64 of an ed25519 signature over :func:`canonical_bytes` of the manifest). The key pair is made at
provisioning (``genba-provision update-key``); the gate holds only the public key. The signature covers
the canonical form, not the file's bytes, so re-indenting a manifest does not break it and a field
added without re-signing does.

The gate receives an :class:`UpdateOffer` inside a ``Command`` (name ``update``) on its own cmd topic:
the manifest and signature travel in the command, the wheels are fetched from ``url`` and checked
against the manifest's hashes and sizes. Nothing in an offer is trusted before :func:`verify` passes.

This module depends on pydantic and cryptography only (protocol depends on neither side).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from pathlib import Path
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from protocol.errors import ProtocolError

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MANIFEST_BYTES = 32 * 1024  # fits in a Command (protocol.messages.MAX_MESSAGE_BYTES) with room
MAX_WHEEL_BYTES = 200 * 1024 * 1024

# A version names a folder (versions/<v>): no slashes, no "..", nothing a shell or a path would read twice.
Version = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9A-Za-z.+_-]{0,39}$")]
# Only wheel files, by their plain name: a manifest cannot make the gate write outside its staging folder.
WheelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.whl$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    # Its own base, not protocol.messages.Message: messages.py imports this module for Command.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestFile(_Strict):
    name: WheelName
    sha256: Sha256
    size: int = Field(..., ge=1, le=MAX_WHEEL_BYTES)


class UpdateManifest(_Strict):
    """What the operator signed: the version and every file of the bundle with its hash and size."""

    v: int = Field(1, ge=1, le=1)
    version: Version
    created_at: AwareDatetime
    files: list[ManifestFile] = Field(..., min_length=1, max_length=200)
    # The gate refuses the update when it runs an older version than this (a step that needs another first).
    min_previous_version: Version | None = None


class UpdateOffer(_Strict):
    """The payload of an ``update`` Command: where the wheels are (http(s) or file URL of the bundle's
    folder, each file at ``url/<name>``), the manifest and its base64 signature."""

    url: str = Field(..., min_length=1, max_length=1000, pattern=r"^(https?|file)://")
    manifest: UpdateManifest
    signature: str = Field(..., min_length=1, max_length=200)


def canonical_bytes(manifest: UpdateManifest) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8, datetimes as pydantic writes them."""
    data = manifest.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_manifest(raw: bytes | str) -> UpdateManifest:
    """Parse a manifest file strictly (unknown fields, wrong types, too big: ProtocolError)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > MAX_MANIFEST_BYTES:
        raise ProtocolError("too_large", f"manifest {len(data)} bytes > {MAX_MANIFEST_BYTES}")
    try:
        return UpdateManifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ProtocolError("invalid", f"manifest {where}: {first.get('msg')}"[:200]) from None


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An ed25519 public key as PEM (SubjectPublicKeyInfo), raw 32 bytes, or 64 hex digits."""
    if len(data) == 32 and not data.startswith(b"-----"):
        return Ed25519PublicKey.from_public_bytes(data)
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except ValueError:
            raise ProtocolError("bad_key", "the public key's PEM cannot be read") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ProtocolError("bad_key", "the public key is not an ed25519 key")
        return key
    with contextlib.suppress(UnicodeDecodeError, ValueError):
        text = bytes.fromhex(text.decode("ascii"))
    if len(text) != 32:
        raise ProtocolError("bad_key", "an ed25519 public key is PEM, 32 raw bytes or 64 hex digits")
    return Ed25519PublicKey.from_public_bytes(text)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """The operator's signing key (PKCS#8 PEM, unencrypted, as ``genba-provision update-key`` writes it)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ProtocolError("bad_key", "the private key is not an ed25519 key")
    return key


def sign(manifest: UpdateManifest, key: Ed25519PrivateKey) -> str:
    """base64 of the ed25519 signature over the canonical bytes."""
    return base64.b64encode(key.sign(canonical_bytes(manifest))).decode("ascii")


def verify(manifest: UpdateManifest, signature_b64: str, public_key: Ed25519PublicKey) -> None:
    """Raise ProtocolError("bad_signature") unless the signature is the key's over this manifest."""
    try:
        sig = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_signature", "the signature is not base64") from None
    try:
        public_key.verify(sig, canonical_bytes(manifest))
    except InvalidSignature:
        raise ProtocolError("bad_signature", f"the signature of version {manifest.version} does not verify") from None


def read_bundle_manifest(bundle: Path) -> tuple[UpdateManifest, str]:
    """(manifest, signature) of a bundle folder, not yet verified."""
    manifest = parse_manifest((bundle / MANIFEST).read_bytes())
    signature = (bundle / SIGNATURE).read_text(encoding="ascii").strip()
    return manifest, signature


__all__ = [
    "MANIFEST", "SIGNATURE", "ManifestFile", "UpdateManifest", "UpdateOffer", "canonical_bytes",
    "load_private_key", "load_public_key", "parse_manifest", "read_bundle_manifest", "sign", "verify",
]
