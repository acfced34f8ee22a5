"""From a gate's bundle to a flashed Raspberry Pi OS image and a first boot, without root.

The tests build Pi-like images themselves (an MBR partition table made with sfdisk, a FAT32 boot
partition made with mkfs.vfat at its offset, a stub root partition), flash a bundle into them the
way an installer does (`genba-provision flash`, a child process), read every file back with mtools,
validate the first-boot configuration with cloud-init's own code (Debian's cloud-init package), and
run the first-boot script against a throwaway root folder, installing the gate from the wheels on
the boot partition with no package index.
"""

from __future__ import annotations

import lzma
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from provisioning import pki
from provisioning.bundle import Bundle, Network, write_bundle
from provisioning.errors import ImageError
from provisioning.flash import detect_os, flash
from provisioning.image import BootPartition, find_boot
from provisioning.wheels import Target, build

SECTOR = 512
BOOT_START, BOOT_SECTORS = 8192, 147456  # 72 MiB FAT32, as on the Pi at 4 MiB
ROOT_SECTORS = 4096
DEVICE = "40224614116771-01"
PSK = "genba-wifi-2026"


def make_image(path: Path, release: str) -> Path:
    """A Raspberry Pi OS-shaped image: partition 1 FAT32 'bootfs' with the files the OS ships."""
    with open(path, "wb") as f:
        f.truncate((BOOT_START + BOOT_SECTORS + ROOT_SECTORS) * SECTOR)
    script = (f"label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\n"
              f"start={BOOT_START + BOOT_SECTORS}, type=83\n")
    subprocess.run(["sfdisk", "-q", str(path)], input=script, text=True, check=True, capture_output=True)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "bootfs", "--offset", str(BOOT_START), str(path),
                    str(BOOT_SECTORS * SECTOR // 1024)], check=True, capture_output=True)
    boot = find_boot(path)
    boot.write("/cmdline.txt", b"console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4"
                               b" fsck.repair=yes rootwait\n")
    boot.write("/config.txt", b"[all]\ndtparam=audio=on\n")
    if release == "trixie":  # what the Trixie images carry, for the user to edit
        boot.write("/user-data", b"#cloud-config\n# hostname: raspberrypi\n")
        boot.write("/network-config", b"# network:\n#   version: 2\n")
        boot.write("/meta-data", b"instance-id: rpios-image\n")
    return path


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gate's wheels for this machine (the Pi's are the same set for aarch64)."""
    out = tmp_path_factory.mktemp("wheels")
    build(out, Target.native())
    return out


def bundle(tmp_path: Path, network: Network, reader: str = "usb") -> Bundle:
    return write_bundle(tmp_path / "bundle", device_id=DEVICE, broker_url="mqtts://broker.genba.example:8883",
                        password="gate-secret-password", ca_pem=pki.make_ca("test").cert_pem, direction="in",
                        network=network, reader=reader)


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning.cli", *args], capture_output=True, text=True)


def test_a_trixie_image_gets_the_bundle_and_a_cloud_init_that_cloud_init_accepts(tmp_path: Path, wheels: Path) -> None:
    image = make_image(tmp_path / "raspios.img", "trixie")
    b = bundle(tmp_path, Network(wifi_ssid="GENBA-AP", wifi_psk=PSK))
    ssh = tmp_path / "id.pub"
    ssh.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9nZW5iYWdhdGV0ZXN0a2V5 installer@office\n")
    r = provision("flash", "--image", str(image), "--bundle", str(b.path), "--wheels", str(wheels),
                  "--out", str(tmp_path / "gate.img"), "--ssh-key", str(ssh))
    assert r.returncode == 0, r.stderr
    assert "cloud-init" in r.stdout
    assert stat.S_IMODE((tmp_path / "gate.img").stat().st_mode) == 0o600  # it holds the gate's password
    boot = find_boot(tmp_path / "gate.img")
    # Every file of the bundle, byte for byte, and every wheel.
    assert boot.read("/genbagate/gate.toml") == b.gate_toml.read_bytes()
    assert boot.read("/genbagate/ca.pem") == b.ca_file.read_bytes()
    assert sorted(boot.list("/genbagate/wheels")) == sorted(f"/genbagate/wheels/{w.name}" for w in wheels.glob("*.whl"))
    for w in wheels.glob("*.whl"):
        assert boot.read(f"/genbagate/wheels/{w.name}") == w.read_bytes()
    repo = Path(__file__).resolve().parents[2]
    assert boot.read("/genbagate/genba-gate.service") == (repo / "systemd/genba-gate.service").read_bytes()
    assert boot.read("/genbagate/firstboot.sh") == (repo / "provisioning/firstboot.sh").read_bytes()
    # cloud-init's own schema check of the user-data (Debian's cloud-init).
    user_data = tmp_path / "user-data"
    user_data.write_bytes(boot.read("/user-data"))
    check = subprocess.run(["cloud-init", "schema", "--config-file", str(user_data)], capture_output=True, text=True)
    assert check.returncode == 0 and "Valid cloud-config" in check.stdout, check.stdout + check.stderr
    ud = yaml.safe_load(user_data.read_text())
    assert ud["hostname"] == DEVICE and ud["timezone"] == "Asia/Tokyo"
    assert ud["runcmd"] == [["bash", "/boot/firmware/genbagate/firstboot.sh"]]
    assert ud["users"][0]["ssh_authorized_keys"][0].startswith("ssh-ed25519 ") and ud["ssh_pwauth"] is False
    # network-config: netplan v2 as cloud-init parses it, with the keys NetworkManager needs.
    net = yaml.safe_load(boot.read("/network-config"))["network"]
    assert net["version"] == 2 and net["renderer"] == "NetworkManager"
    assert net["wifis"]["wlan0"]["access-points"] == {"GENBA-AP": {"password": PSK}}
    assert net["wifis"]["wlan0"]["regulatory-domain"] == "JP"
    parsed = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys, yaml; from cloudinit.net.network_state import parse_net_config_data;"
         "ns = parse_net_config_data(yaml.safe_load(sys.stdin)['network']); print(ns.version, ns.config['renderer'])"],
        input=boot.read("/network-config").decode(), capture_output=True, text=True)
    assert parsed.returncode == 0 and parsed.stdout.split() == ["2", "NetworkManager"], parsed.stderr
    meta = yaml.safe_load(boot.read("/meta-data"))
    assert meta["instance-id"].startswith(f"genbagate-{DEVICE}-") and meta["local-hostname"] == DEVICE
    # The original image is untouched (--out); the OS files we did not own are kept.
    assert b"genbagate" not in find_boot(image).read("/meta-data")
    assert boot.read("/config.txt") == b"[all]\ndtparam=audio=on\n"


def test_a_bookworm_image_gets_firstrun_and_a_fixed_address_on_ethernet(tmp_path: Path, wheels: Path) -> None:
    image = make_image(tmp_path / "raspios.img", "bookworm")
    b = bundle(tmp_path, Network(address="192.168.10.21/24", gateway="192.168.10.1", dns=("192.168.10.1",)),
               reader="tty:AMA0:pn532")
    result = flash(image, b, wheels)  # in place, like a card in a reader
    boot = find_boot(image)
    assert result["os"] == "bookworm" == detect_os(boot)
    cmdline = boot.read("/cmdline.txt").decode()
    assert cmdline.count("\n") == 1 and "systemd.run=/boot/firmware/firstrun.sh" in cmdline
    assert "console=serial0" not in cmdline  # the PN532 owns the UART
    assert "enable_uart=1" in boot.read("/config.txt").decode()
    firstrun = boot.read("/firstrun.sh").decode()
    assert "address1=192.168.10.21/24,192.168.10.1" in firstrun and "type=ethernet" in firstrun
    assert "bash /boot/firmware/genbagate/firstboot.sh" in firstrun
    assert subprocess.run(["bash", "-n"], input=firstrun, text=True).returncode == 0
    assert not boot.exists("/user-data")
    flash(image, b, wheels)  # flashing again does not stack a second systemd.run
    assert boot.read("/cmdline.txt").decode().count("systemd.run=") == 1


def test_a_compressed_image_a_missing_wheel_set_and_a_disk_that_is_not_an_image_are_told(
        tmp_path: Path, wheels: Path) -> None:
    image = make_image(tmp_path / "raspios.img", "trixie")
    xz = tmp_path / "raspios.img.xz"
    xz.write_bytes(lzma.compress(image.read_bytes(), preset=0))
    b = bundle(tmp_path, Network())
    r = provision("flash", "--image", str(xz), "--bundle", str(b.path), "--wheels", str(wheels))
    assert r.returncode == 2 and "--out" in r.stderr
    r = provision("flash", "--image", str(xz), "--bundle", str(b.path), "--wheels", str(wheels),
                  "--out", str(tmp_path / "out.img"))
    assert r.returncode == 0, r.stderr
    assert find_boot(tmp_path / "out.img").read("/genbagate/gate.toml") == b.gate_toml.read_bytes()
    r = provision("flash", "--image", str(image), "--bundle", str(b.path), "--wheels", str(tmp_path / "nowheels"))
    assert r.returncode == 2 and "genba-provision wheels" in r.stderr
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(1 << 20))
    with pytest.raises(ImageError) as err:
        find_boot(junk)
    assert err.value.code == "no_partition_table"


def test_the_first_boot_installs_the_gate_from_the_boot_partition_alone(tmp_path: Path, wheels: Path) -> None:
    image = make_image(tmp_path / "raspios.img", "trixie")
    b = bundle(tmp_path, Network(wifi_ssid="GENBA-AP", wifi_psk=PSK))
    flash(image, b, wheels)
    # What the Pi sees at /boot/firmware/genbagate, copied out of the image with mtools.
    boot_dir = tmp_path / "bootfs" / "genbagate"
    (boot_dir / "wheels").mkdir(parents=True)
    part: BootPartition = find_boot(image)
    for name in part.list("/genbagate"):
        if not name.endswith("/wheels"):
            (boot_dir / Path(name).name).write_bytes(part.read(name))
    for name in part.list("/genbagate/wheels"):
        (boot_dir / "wheels" / Path(name).name).write_bytes(part.read(name))
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    # No package index: pip is pointed at a dead one, so anything not on the partition fails.
    env.update(GENBA_ROOT=str(root), GENBA_PYTHON=sys.executable, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_CONFIG_FILE=os.devnull)
    r = subprocess.run(["bash", str(boot_dir / "firstboot.sh")], env=env, capture_output=True, text=True)
    log = (root / "var/log/genbagate-firstboot.log").read_text()
    assert r.returncode == 0, log
    gate = root / "opt/genbagate/.venv/bin/genba-gate"
    assert subprocess.run([str(gate), "--help"], capture_output=True).returncode == 0
    installed = root / "etc/genbagate/gate.toml"
    assert tomllib.loads(installed.read_text())["device_id"] == DEVICE
    assert stat.S_IMODE(installed.stat().st_mode) == 0o640
    assert (root / "etc/systemd/system/genba-gate.service").is_file()
    assert (root / "etc/udev/rules.d/99-genbagate-reader.rules").is_file()
    assert not (boot_dir / "gate.toml").exists()  # the password left the FAT partition
    assert "would run: systemctl enable --now genba-gate.service" in log
    # A second run (a reboot) does nothing.
    r = subprocess.run(["bash", str(boot_dir / "firstboot.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "already installed" in (root / "var/log/genbagate-firstboot.log").read_text()


def _loop_device(image: Path) -> str | None:
    """The image attached as a block device (root only): what a card in a USB reader looks like."""
    if os.geteuid() != 0:
        return None
    r = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.startswith("/dev/") else None


def test_a_card_in_a_reader_is_flashed_in_place(tmp_path: Path, wheels: Path) -> None:
    image = make_image(tmp_path / "card.img", "trixie")
    device = _loop_device(image)
    if device is None:
        pytest.skip("attaching an image as a block device needs root and a free loop device")
    try:
        b = bundle(tmp_path, Network())
        r = provision("flash", "--image", device, "--bundle", str(b.path), "--wheels", str(wheels))
        assert r.returncode == 0, r.stderr
        assert find_boot(Path(device)).read("/genbagate/gate.toml") == b.gate_toml.read_bytes()
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)
    assert find_boot(image).read("/genbagate/gate.toml") == b.gate_toml.read_bytes()  # it was the card itself
