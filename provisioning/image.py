"""The FAT boot partition of a Raspberry Pi OS image or card, read and written without root and
without mounting: the partition table through ``sfdisk --json`` (util-linux), the files through
mtools (``mcopy -i IMAGE@@OFFSET``), which works the same on an image file and on a block device.

Why not loop-mount: that needs root (and a kernel with loop devices, which containers and CI often
lack), and an installer flashing on a laptop should not need either.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provisioning.errors import ImageError

#: MBR partition types of FAT (the Pi's boot partition is type c, W95 FAT32 LBA) and GPT type GUIDs.
FAT_MBR_TYPES = {"1", "4", "6", "b", "c", "e", "ef"}
FAT_GPT_TYPES = {"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"}


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/sbin/{name}" if Path(f"/sbin/{name}").exists() else None)
    if path is None:
        raise ImageError("tool_missing", f"{name} がありません: apt-get install {package} を実行してください",
                         f"{name} not found: apt-get install {package}")
    return path


@dataclass(frozen=True)
class BootPartition:
    image: Path
    offset: int  # bytes from the start of the image or device
    size: int

    @property
    def spec(self) -> str:
        """mtools' way to name a filesystem inside an image: PATH@@OFFSET."""
        return f"{self.image}@@{self.offset}"

    def _mtools(self, *args: str, input_bytes: bytes | None = None) -> bytes:
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"}
        r = subprocess.run(list(args), capture_output=True, env=env, input=input_bytes)
        if r.returncode != 0:
            raise ImageError("mtools_failed", f"ブートパーティションの読み書きに失敗しました: {r.stderr.decode(errors='replace').strip()}",
                             f"{' '.join(args[:2])}: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout

    def list(self, folder: str = "/") -> list[str]:
        out = self._mtools(_tool("mdir", "mtools"), "-b", "-i", self.spec, f"::{folder}")
        return sorted(line.decode().removeprefix("::").rstrip("/") for line in out.splitlines() if line.strip())

    def exists(self, path: str) -> bool:
        folder, _, name = path.rpartition("/")
        try:
            return any(p.rsplit("/", 1)[-1].lower() == name.lower() for p in self.list(folder or "/"))
        except ImageError:
            return False

    def read(self, path: str) -> bytes:
        return self._mtools(_tool("mcopy", "mtools"), "-n", "-i", self.spec, f"::{path}", "-")

    def mkdir(self, path: str) -> None:
        if not self.exists(path):
            self._mtools(_tool("mmd", "mtools"), "-i", self.spec, f"::{path}")

    def write(self, path: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(prefix="genba-") as tmp:
            tmp.write(data)
            tmp.flush()
            self.copy_in(Path(tmp.name), path)

    def copy_in(self, src: Path, path: str) -> None:
        self._mtools(_tool("mcopy", "mtools"), "-o", "-i", self.spec, str(src), f"::{path}")

    def free_bytes(self) -> int:
        out = self._mtools(_tool("minfo", "mtools"), "-i", self.spec).decode(errors="replace")
        info = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.splitlines()) if v}
        try:
            return int(info["free clusters"]) * int(info["sectors per cluster"]) * int(info["sector size"])
        except (KeyError, ValueError):
            return -1


def find_boot(image: Path) -> BootPartition:
    """The first FAT partition of an image file or a block device."""
    if not image.exists():
        raise ImageError("image_missing", f"イメージ {image} がありません", f"no image at {image}")
    r = subprocess.run([_tool("sfdisk", "fdisk"), "--json", str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        raise ImageError("no_partition_table", f"{image} にパーティションテーブルがありません（Raspberry Pi OS のイメージですか？）",
                         f"{image}: no partition table ({r.stderr.strip()})")
    table = json.loads(r.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    for part in table.get("partitions", []):
        kind = str(part.get("type", "")).lower()
        if kind in FAT_MBR_TYPES or kind.upper() in FAT_GPT_TYPES:
            return BootPartition(image, int(part["start"]) * sector, int(part["size"]) * sector)
    raise ImageError("no_boot_partition", f"{image} に FAT のブートパーティションがありません",
                     f"{image}: no FAT partition")


def prepare(image: Path, out: Path | None) -> Path:
    """The file or device to write: the image itself, or a copy at ``out`` (decompressed from
    ``.xz``, as Raspberry Pi OS is published). A compressed image needs ``--out``."""
    if out is not None and out.parent and not out.parent.is_dir():
        raise ImageError("out_dir_missing", f"出力先のフォルダ {out.parent} がありません", f"no folder {out.parent}")
    if image.suffix == ".xz":
        if out is None:
            raise ImageError("needs_out", "圧縮されたイメージ（.xz）には --out で書き出し先を指定してください",
                             "a compressed image needs --out")
        with lzma.open(image) as src, open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        os.chmod(out, 0o600)  # the flashed image will hold the gate's password
        return out
    if out is not None:
        shutil.copyfile(image, out)
        os.chmod(out, 0o600)
        return out
    return image
