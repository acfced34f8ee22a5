"""Writing a gate's bundle and first-boot configuration into a Raspberry Pi OS boot partition.

Two first-boot routes, chosen from what the image holds (or ``--os``):

- **cloud-init** (Raspberry Pi OS 13 Trixie and later): the image's boot partition already has
  ``user-data``, ``network-config`` and ``meta-data``; we replace them. user-data sets the hostname
  (= the device id), the time zone, a locked admin account (SSH key optional) and runs our
  ``genbagate/firstboot.sh``; network-config is netplan v2 (Wi-Fi or Ethernet, DHCP or fixed);
  meta-data gets a new ``instance-id`` so cloud-init runs again on a re-flashed card.
- **firstrun.sh** (Bookworm): what Raspberry Pi Imager does: ``firstrun.sh`` on the boot
  partition, started once from ``cmdline.txt`` (``systemd.run=``), which sets the hostname, writes
  a NetworkManager connection, runs ``firstboot.sh`` and removes itself from ``cmdline.txt``.

Either way ``genbagate/`` holds the gate's config, its secrets (broker credentials), CA, unit, udev rule,
the wheels and ``firstboot.sh``, which installs without a package index (see that script).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from provisioning.bundle import Bundle, Network
from provisioning.errors import ImageError
from provisioning.image import BootPartition, find_boot, prepare
from provisioning.wheels import check as check_wheels
from provisioning.wheels import project_root

OS = Literal["auto", "trixie", "bookworm"]
BOOT_MOUNT = "/boot/firmware"  # where both releases mount the boot partition
FIRSTRUN_CMDLINE = (f" systemd.run={BOOT_MOUNT}/firstrun.sh systemd.run_success_action=reboot"
                    " systemd.unit=kernel-command-line.target")
TIMEZONE = "Asia/Tokyo"
ADMIN = "genba-admin"


def _yaml_str(s: str) -> str:
    """A YAML double-quoted scalar: JSON's string syntax is valid YAML."""
    return json.dumps(s, ensure_ascii=False)


def user_data(device_id: str, ssh_keys: list[str]) -> str:
    lines = [
        "#cloud-config",
        "# GenbaGate gate: written by genba-provision flash. The gate installs itself from",
        f"# {BOOT_MOUNT}/genbagate at first boot (no network needed) and starts.",
        f"hostname: {_yaml_str(device_id)}",  # quoted: an id like 0123 or off is not a number or a bool
        "manage_etc_hosts: true",
        f"timezone: {TIMEZONE}",
        "users:",
        f"  - name: {ADMIN}",
        "    gecos: GenbaGate maintenance",
        "    groups: [sudo, adm]",
        "    shell: /bin/bash",
        "    lock_passwd: true",
    ]
    if ssh_keys:  # without a key nobody can log in: the account only keeps the first-boot wizard away
        lines.append("    sudo: ALL=(ALL) NOPASSWD:ALL")
        lines.append("    ssh_authorized_keys:")
        lines += [f"      - {_yaml_str(k)}" for k in ssh_keys]
        lines.append("ssh_pwauth: false")
    lines += [
        "runcmd:",
        f"  - [bash, {BOOT_MOUNT}/genbagate/firstboot.sh]",
    ]
    return "\n".join(lines) + "\n"


def network_config(net: Network) -> str:
    """netplan v2, as cloud-init's NoCloud reads it from the boot partition; NetworkManager renders it."""
    iface = _iface(net)
    lines = ["network:", "  version: 2", "  renderer: NetworkManager"]
    if net.wifi_ssid:
        lines += ["  wifis:", "    wlan0:", *iface, f"      regulatory-domain: {_yaml_str(net.country)}",
                  "      access-points:", f"        {_yaml_str(net.wifi_ssid)}:"]
        lines.append(f"          password: {_yaml_str(net.wifi_psk)}" if net.wifi_psk else "          {}")
        lines += ["  ethernets:", "    eth0:", "      dhcp4: true", "      optional: true"]
    else:
        lines += ["  ethernets:", "    eth0:", *iface]
    return "\n".join(lines) + "\n"


def _iface(net: Network) -> list[str]:
    if not net.address:
        return ["      dhcp4: true", "      optional: true"]
    out = ["      dhcp4: false", "      optional: true", f"      addresses: [{_yaml_str(net.address)}]"]
    if net.gateway:
        out.append(f"      routes: [{{to: default, via: {_yaml_str(net.gateway)}}}]")
    if net.dns:
        out.append(f"      nameservers: {{addresses: [{', '.join(_yaml_str(d) for d in net.dns)}]}}")
    return out


def meta_data(device_id: str, now: datetime) -> str:
    # A new instance-id per flash: cloud-init runs its once-per-instance modules again on a re-used card.
    instance = f"genbagate-{device_id}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    return f"instance-id: {_yaml_str(instance)}\nlocal-hostname: {_yaml_str(device_id)}\n"


def _sh(s: str) -> str:
    """A single-quoted shell word."""
    return "'" + s.replace("'", "'\\''") + "'"


def _keyfile(value: str) -> str:
    """A GKeyFile string value: backslash escaped, and spaces at either end kept as \\s (GLib strips
    them otherwise). Control characters never get here (bundle.Network refuses them)."""
    v = value.replace("\\", "\\\\")
    stripped = v.strip(" ")
    lead = len(v) - len(v.lstrip(" "))
    trail = len(v) - len(v.rstrip(" "))
    return "\\s" * lead + stripped + "\\s" * trail if stripped else "\\s" * len(v)


def nm_connection(net: Network) -> str:
    """The NetworkManager keyfile Bookworm's firstrun.sh installs (Imager writes the same)."""
    if net.wifi_ssid:
        lines = ["[connection]", "id=genbagate", "type=wifi", "interface-name=wlan0", "autoconnect=true",
                 "[wifi]", "mode=infrastructure", f"ssid={_keyfile(net.wifi_ssid)}"]
        if net.wifi_psk:
            lines += ["[wifi-security]", "key-mgmt=wpa-psk", f"psk={_keyfile(net.wifi_psk)}"]
    else:
        lines = ["[connection]", "id=genbagate", "type=ethernet", "interface-name=eth0", "autoconnect=true"]
    if net.address:
        addr = net.address + (f",{net.gateway}" if net.gateway else "")
        lines += ["[ipv4]", "method=manual", f"address1={addr}"]
        if net.dns:
            lines.append("dns=" + ";".join(net.dns) + ";")
    else:
        lines += ["[ipv4]", "method=auto"]
    lines += ["[ipv6]", "method=auto"]
    return "\n".join(lines) + "\n"


def firstrun_sh(device_id: str, net: Network, ssh_keys: list[str]) -> str:
    conn = nm_connection(net)
    keys = "\n".join(ssh_keys)
    return f"""#!/bin/bash
# GenbaGate gate {device_id}: Bookworm's first-boot route (as Raspberry Pi Imager writes it).
# Started once by cmdline.txt (systemd.run=); removes itself and its cmdline.txt entry, then reboots.
set +e
echo {_sh(device_id)} >/etc/hostname
sed -i "s/127.0.1.1.*/127.0.1.1\\t{device_id}/" /etc/hosts
ln -sf /usr/share/zoneinfo/{TIMEZONE} /etc/localtime
echo {_sh(TIMEZONE)} >/etc/timezone
install -d -m 0700 /etc/NetworkManager/system-connections
cat >/etc/NetworkManager/system-connections/genbagate.nmconnection <<'GENBA_NM'
{conn}GENBA_NM
chmod 0600 /etc/NetworkManager/system-connections/genbagate.nmconnection
command -v raspi-config >/dev/null && raspi-config nonint do_wifi_country {_sh(net.country)}
command -v rfkill >/dev/null && rfkill unblock wifi
for f in /var/lib/systemd/rfkill/*:wlan; do [ -e "$f" ] && echo 0 >"$f"; done
# A locked maintenance account, so the image's first-boot user wizard does not wait on a screen.
if [ -x /usr/lib/userconf-pi/userconf ]; then /usr/lib/userconf-pi/userconf {ADMIN} '!'; fi
if [ -n {_sh(keys)} ]; then
  install -d -m 0700 -o {ADMIN} /home/{ADMIN}/.ssh
  printf '%s\\n' {_sh(keys)} >/home/{ADMIN}/.ssh/authorized_keys
  chown {ADMIN} /home/{ADMIN}/.ssh/authorized_keys; chmod 0600 /home/{ADMIN}/.ssh/authorized_keys
  systemctl enable ssh
fi
GENBA_START=no bash {BOOT_MOUNT}/genbagate/firstboot.sh
rm -f {BOOT_MOUNT}/firstrun.sh
sed -i 's| systemd.run.*||g' {BOOT_MOUNT}/cmdline.txt
exit 0
"""


def detect_os(boot: BootPartition) -> Literal["trixie", "bookworm"]:
    """Trixie images carry cloud-init's seed files on the boot partition; Bookworm's do not."""
    if boot.exists("/user-data") or boot.exists("/network-config") or boot.exists("/meta-data"):
        return "trixie"
    if boot.exists("/cmdline.txt"):
        return "bookworm"
    raise ImageError("not_raspios", "Raspberry Pi OS のブートパーティションではありません（cmdline.txt がありません）",
                     "not a Raspberry Pi OS boot partition (no cmdline.txt)")


def flash(image: Path, bundle: Bundle, wheels: Path, *, out: Path | None = None, os_release: OS = "auto",
          ssh_keys: list[str] | None = None, now: datetime | None = None,
          update_key: Path | None = None) -> dict[str, Any]:
    bundle.check()
    own_wheel = check_wheels(wheels)
    target = prepare(image, out)
    boot = find_boot(target)
    release = detect_os(boot) if os_release == "auto" else os_release
    device_id = bundle.device_id()
    net = bundle.network()
    keys = list(ssh_keys or [])
    wheel_files = sorted(wheels.glob("*.whl"))
    need = sum(p.stat().st_size for p in wheel_files) + (1 << 20)
    free = boot.free_bytes()
    if 0 <= free < need:
        raise ImageError("boot_full", f"ブートパーティションの空きが足りません（必要 {need >> 20} MB、空き {free >> 20} MB）",
                         f"boot partition too full: need {need} bytes, {free} free")
    systemd = project_root() / "systemd"
    boot.mkdir("/genbagate")
    boot.mkdir("/genbagate/wheels")
    boot.copy_in(bundle.gate_toml, "/genbagate/gate.toml")
    if bundle.secrets_toml.is_file():  # not in a bundle made before the credentials left gate.toml
        boot.copy_in(bundle.secrets_toml, "/genbagate/secrets.toml")
    boot.copy_in(bundle.ca_file, "/genbagate/ca.pem")
    boot.copy_in(Path(__file__).with_name("firstboot.sh"), "/genbagate/firstboot.sh")
    boot.copy_in(systemd / "genba-gate.service", "/genbagate/genba-gate.service")
    boot.copy_in(systemd / "99-genbagate-reader.rules", "/genbagate/99-genbagate-reader.rules")
    for unit in ("genba-gate-rollback.service", "genba-gate-rollback-check.service", "genba-gate-rollback-check.timer"):
        boot.copy_in(systemd / unit, f"/genbagate/{unit}")
    if update_key is not None:  # the operator's public key: the gate installs only updates it signed
        boot.copy_in(update_key, "/genbagate/update_key.pub")
    for w in wheel_files:
        boot.copy_in(w, f"/genbagate/wheels/{w.name}")
    if _uses_uart(bundle):
        _enable_uart(boot)
    if release == "trixie":
        boot.write("/user-data", user_data(device_id, keys).encode())
        boot.write("/network-config", network_config(net).encode())
        boot.write("/meta-data", meta_data(device_id, now or datetime.now(UTC)).encode())
    else:
        boot.write("/firstrun.sh", firstrun_sh(device_id, net, keys).encode())
        cmdline = boot.read("/cmdline.txt").decode().strip()
        if "systemd.run=" not in cmdline:
            cmdline += FIRSTRUN_CMDLINE
        boot.write("/cmdline.txt", (cmdline + "\n").encode())
    return {"image": target, "device_id": device_id, "os": release, "wheels": len(wheel_files),
            "genbagate": own_wheel.name, "network": net.wifi_ssid or "Ethernet"}


def _uses_uart(bundle: Bundle) -> bool:
    import tomllib

    return str(tomllib.loads(bundle.gate_toml.read_text(encoding="utf-8")).get("reader", "")).startswith("tty:")


def _enable_uart(boot: BootPartition) -> None:
    """A PN532 on the UART: the serial port on, its login console off (what raspi-config does)."""
    config = boot.read("/config.txt").decode() if boot.exists("/config.txt") else ""
    if "enable_uart=1" not in config:
        boot.write("/config.txt", (config.rstrip("\n") + "\n# GenbaGate: PN532 reader on the UART\nenable_uart=1\n").encode())
    if boot.exists("/cmdline.txt"):
        cmdline = boot.read("/cmdline.txt").decode()
        cleaned = " ".join(w for w in cmdline.split() if not w.startswith("console=serial0"))
        boot.write("/cmdline.txt", (cleaned + "\n").encode())

