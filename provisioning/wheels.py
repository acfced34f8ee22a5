"""The gate's software as wheels, for a first boot without a package index.

A gate at a site may have no route to PyPI (a closed site network, a mobile router with a quota),
so `flash` puts the gate's whole install on the boot partition: GenbaGate's own wheel and every
dependency's, for the Pi's platform (aarch64, the Python of the OS release). pip resolves the set
(``pip download --only-binary=:all: --platform … --python-version …``); a dependency published only
as an sdist (sdnotify, pyDes) is built here into a pure-Python wheel and offered to the resolver
through ``--find-links``, and the resolve is retried. A dependency that needs compiling and has no
wheel for the Pi is an error naming it.

The Pi's GPIO libraries are not in the set: Raspberry Pi OS ships them (python3-lgpio,
python3-rpi-lgpio) and the first boot makes the venv with ``--system-site-packages``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

from provisioning.errors import ProvisionError

#: Raspberry Pi OS 13 (Trixie) has Python 3.13; 12 (Bookworm) 3.11.
TARGETS = {"trixie": "3.13", "bookworm": "3.11"}
AARCH64_PLATFORMS = ["manylinux_2_36_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
#: What the gate installs: the package (its base dependencies) and the NFC library.
REQUIREMENTS = ["genbagate", "nfcpy>=1.0.4"]
_MISSING = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+)")


@dataclass(frozen=True)
class Target:
    python: str  # "3.13"
    platforms: tuple[str, ...]  # () = this machine

    @classmethod
    def pi(cls, release: str) -> Target:
        if release not in TARGETS:
            raise ProvisionError("bad_release", f"OS のリリースは {', '.join(TARGETS)} のどれかです",
                                 f"release is one of {', '.join(TARGETS)}")
        return cls(TARGETS[release], tuple(AARCH64_PLATFORMS))

    @classmethod
    def native(cls) -> Target:
        """This machine (tests, and a gate built from a PC of the same kind)."""
        return cls(f"{sys.version_info.major}.{sys.version_info.minor}", ())


def project_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise ProvisionError("no_source", "GenbaGate のソース（pyproject.toml）が見つかりません。--source を指定してください",
                             "GenbaGate's source tree not found: give --source")
    return root


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
                          capture_output=True, text=True)


def build(out: Path, target: Target, source: Path | None = None) -> list[Path]:
    """Fill ``out`` with the wheel set; returns the wheels. Safe to repeat (pip skips what is there)."""
    out.mkdir(parents=True, exist_ok=True)
    src = source or project_root()
    r = _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src))
    if r.returncode != 0:
        r = _pip("wheel", "--no-deps", "-q", "-w", str(out), str(src))
    if r.returncode != 0:
        raise ProvisionError("wheel_failed", "GenbaGate のホイールを作れませんでした", r.stderr[-2000:])
    own = sorted(out.glob("genbagate-*.whl"))[-1]
    requirements = [f"genbagate @ {own.resolve().as_uri()}", *REQUIREMENTS[1:]]
    platform_args: list[str] = []
    if target.platforms:
        platform_args = [a for p in target.platforms for a in ("--platform", p)]
        platform_args += ["--platform", "any", "--implementation", "cp", "--python-version", target.python]
    built: set[str] = set()
    for _ in range(20):  # each round builds one sdist-only dependency
        r = _pip("download", "-q", "--only-binary=:all:", "--find-links", str(out), "-d", str(out),
                 *platform_args, *requirements)
        if r.returncode == 0:
            return sorted(out.glob("*.whl"))
        m = _MISSING.search(r.stderr)
        if m is None or m.group(1).lower() in built:
            raise ProvisionError("download_failed", "ゲートの依存パッケージをそろえられませんでした（ネットワークと PyPI を確認してください）",
                                 r.stderr[-2000:])
        name = m.group(1)
        built.add(name.lower())
        w = _pip("wheel", "--no-deps", "-q", "-w", str(out), name)
        made = [p for p in out.glob("*.whl") if _dist(p) == _normal(name)]
        if w.returncode != 0 or not made or not all(p.name.endswith("-none-any.whl") for p in made):
            raise ProvisionError("needs_compiling", f"{name} は Pi 用のホイールがなく、ここでは作れません",
                                 f"{name} has no wheel for the Pi and is not pure Python")
    raise ProvisionError("download_failed", "依存パッケージの解決が終わりませんでした", "resolver did not converge")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist(wheel: Path) -> str:
    return _normal(wheel.name.split("-")[0])


def check(wheels: Path) -> Path:
    """The GenbaGate wheel in a wheel folder, or an error saying how to make the folder."""
    own = sorted(wheels.glob("genbagate-*.whl")) if wheels.is_dir() else []
    if not own:
        raise ProvisionError("no_wheels", f"{wheels} に GenbaGate のホイールがありません。先に "
                             f"`genba-provision wheels --out {wheels}` を実行してください",
                             f"no genbagate wheel in {wheels}: run `genba-provision wheels` first")
    with zipfile.ZipFile(own[-1]) as z:
        if not any(n.startswith("firmware/") for n in z.namelist()):
            raise ProvisionError("bad_wheel", f"{own[-1].name} にゲートのソフトウェアが入っていません",
                                 "the wheel lacks the firmware package")
    return own[-1]


def native_platform() -> str:
    return sysconfig.get_platform()
