#!/bin/bash
# GenbaGate first boot: install the gate from the wheels on the boot partition (no network needed),
# put its config where the unit reads it, take the broker password off the boot partition, run the
# installer's selftest (LED + voice), then start the gate. Written by `genba-provision flash`.
#
# Runs as root from cloud-init's runcmd (Raspberry Pi OS Trixie) or from firstrun.sh (Bookworm).
# Safe to run again: it stops at once once it has finished (marker file), and each step overwrites.
#
# Test hooks (never set on a Pi): GENBA_ROOT installs under a throwaway folder instead of / and only
# logs the commands that change the running system (useradd, systemctl, udevadm);
# GENBA_PYTHON chooses the interpreter for the venv.
set -euo pipefail

ROOT="${GENBA_ROOT:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # the genbagate folder on the boot partition
PYTHON="${GENBA_PYTHON:-python3}"
START="${GENBA_START:-yes}"                            # "no" under firstrun.sh: a reboot follows
VENV="$ROOT/opt/genbagate/.venv"
ETC="$ROOT/etc/genbagate"
STATE="$ROOT/var/lib/genbagate"
LOG="$ROOT/var/log/genbagate-firstboot.log"
DONE="$STATE/.firstboot-done"

mkdir -p "$(dirname "$LOG")"
exec >>"$LOG" 2>&1
echo "== GenbaGate first boot $(date -Is) from $HERE"

if [ -e "$DONE" ]; then
    echo "already installed ($DONE): nothing to do"
    exit 0
fi

system() {
    # A command that changes the running system: run on the Pi, only logged in a throwaway root.
    if [ -z "$ROOT" ]; then "$@"; else echo "would run: $*"; fi
}

# 1. The service user, in the groups that own the GPIO, sound, UART and USB devices.
if [ -z "$ROOT" ] && ! id genba >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/genbagate --no-create-home --shell /usr/sbin/nologin genba
fi
for group in gpio audio dialout plugdev; do
    if [ -z "$ROOT" ]; then
        if getent group "$group" >/dev/null; then usermod -aG "$group" genba; fi
    else
        echo "would run: usermod -aG $group genba"
    fi
done

# 2. The gate's software, from the wheels only. --system-site-packages: Raspberry Pi OS's own
#    python3-lgpio / python3-rpi-lgpio drive the GPIO (no wheel of lgpio exists for every Pi).
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --no-index --no-cache-dir --disable-pip-version-check -q \
    --find-links "$HERE/wheels" genbagate nfcpy
"$VENV/bin/genba-gate" --help >/dev/null
echo "installed: $("$VENV/bin/python" -c 'import importlib.metadata as m; print("genbagate", m.version("genbagate"))')"

# 3. Config and CA where the unit reads them; the password readable by root and the gate only.
install -d -m 0750 "$ETC"
install -m 0640 "$HERE/gate.toml" "$ETC/gate.toml"
install -m 0644 "$HERE/ca.pem" "$ETC/ca.pem"
system chgrp genba "$ETC" "$ETC/gate.toml"
install -d -m 0750 "$STATE"
system chown genba:genba "$STATE"

# 4. The reader's udev rule and the unit.
install -d "$ROOT/etc/udev/rules.d" "$ROOT/etc/systemd/system"
install -m 0644 "$HERE/99-genbagate-reader.rules" "$ROOT/etc/udev/rules.d/99-genbagate-reader.rules"
install -m 0644 "$HERE/genba-gate.service" "$ROOT/etc/systemd/system/genba-gate.service"
# Not fatal: under Bookworm's firstrun.sh udevd may not run yet; the reboot that follows applies the rule.
system udevadm control --reload || true
system udevadm trigger --subsystem-match=usb || true

# 5. The boot partition is FAT: anyone who pulls the card reads it. The password lives in /etc now.
if command -v shred >/dev/null; then shred -u "$HERE/gate.toml"; else rm -f "$HERE/gate.toml"; fi
sync

# 6. The installer's check, with its LED pattern and voice, then the gate itself.
system "$VENV/bin/genba-gate" selftest --config /etc/genbagate/gate.toml --json || true
system systemctl daemon-reload
if [ "$START" = "yes" ]; then
    system systemctl enable --now genba-gate.service
else
    system systemctl enable genba-gate.service
fi

touch "$DONE"
echo "== done $(date -Is)"
