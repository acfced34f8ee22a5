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

# 3. Config and CA where the unit reads them. The secrets (broker credentials; the gate adds its keys)
#    in a folder of their own, 0700 and 0600, owned by the gate's account: readable by it and root only,
#    and rewritable by the gate atomically (see firmware/keystore.py and the unit's ReadWritePaths=).
install -d -m 0750 "$ETC"
install -m 0640 "$HERE/gate.toml" "$ETC/gate.toml"
install -m 0644 "$HERE/ca.pem" "$ETC/ca.pem"
system chgrp genba "$ETC" "$ETC/gate.toml"
install -d -m 0700 "$ETC/private"
if [ -f "$HERE/secrets.toml" ]; then
    install -m 0600 "$HERE/secrets.toml" "$ETC/private/secrets.toml"
fi
system chown -R genba:genba "$ETC/private"
install -d -m 0750 "$STATE"
system chown genba:genba "$STATE"

# 4. The reader's udev rule and the unit.
install -d "$ROOT/etc/udev/rules.d" "$ROOT/etc/systemd/system"
install -m 0644 "$HERE/99-genbagate-reader.rules" "$ROOT/etc/udev/rules.d/99-genbagate-reader.rules"
install -m 0644 "$HERE/genba-gate.service" "$ROOT/etc/systemd/system/genba-gate.service"
# Signed updates: the rollback units, the operator's public key, and /opt/genbagate writable by the gate
# (it installs new versions beside the running one; firmware/update.py).
for unit in genba-gate-rollback.service genba-gate-rollback-check.service genba-gate-rollback-check.timer; do
    if [ -f "$HERE/$unit" ]; then
        install -m 0644 "$HERE/$unit" "$ROOT/etc/systemd/system/$unit"
    fi
done
if [ -f "$HERE/update_key.pub" ]; then
    install -m 0644 "$HERE/update_key.pub" "$ETC/update_key.pub"
fi
system chown -R genba:genba "$ROOT/opt/genbagate"
# Not fatal: under Bookworm's firstrun.sh udevd may not run yet; the reboot that follows applies the rule.
system udevadm control --reload || true
system udevadm trigger --subsystem-match=usb || true

# 5. The boot partition is FAT: anyone who pulls the card reads it. The password lives in /etc now.
#    (gate.toml too: a bundle made before the credentials moved to secrets.toml has them there.)
for f in "$HERE/gate.toml" "$HERE/secrets.toml"; do
    if [ -e "$f" ]; then
        if command -v shred >/dev/null; then shred -u "$f"; else rm -f "$f"; fi
    fi
done
sync

# 6. The installer's check, with its LED pattern and voice, then the gate itself.
system "$VENV/bin/genba-gate" selftest --config /etc/genbagate/gate.toml --json || true
system systemctl daemon-reload
if [ -f "$ROOT/etc/systemd/system/genba-gate-rollback-check.timer" ]; then
    system systemctl enable genba-gate-rollback-check.timer
fi
if [ "$START" = "yes" ]; then
    system systemctl enable --now genba-gate.service
else
    system systemctl enable genba-gate.service
fi

touch "$DONE"
echo "== done $(date -Is)"
