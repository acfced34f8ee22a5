"""The demo's scripted day at the gates: a private Mosquitto, the server's MQTT ingest, and two
`genba-gate run --simulate` processes (entry and exit) fed cards on stdin.

Each card is one line on the gate's stdin; the gate answers on stdout (LED, beep, voice, the tap
it recorded). The script sets the gates' simulated wall clocks with ``!clock`` so a morning and
an evening pass in seconds, waits for each answer before the next card (as a queue of workers
would), and at the end closes stdin: ``--exit-when-drained`` makes each gate exit once the server
has acknowledged every tap, so when both have exited the day is in the database.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path

from server.domain.attendance import JST
from server.reports import pad

GATE = Path(sys.executable).with_name("genba-gate")


@dataclass
class Step:
    at: str  # HH:MM local, the gate's simulated clock
    who: str  # a worker's name, or a description for a card nobody holds
    uid: str


@dataclass
class SimGate:
    """One simulated gate process; ``lines`` is what it showed and said."""

    device_id: str
    config: Path
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(GATE), "run", "--simulate", "--config", str(self.config), "--clock-synced", "yes",
             "--exit-when-drained"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.errors), daemon=True).start()

    @staticmethod
    def _pump(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, check: object, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return True
            time.sleep(0.02)
        return False

    def answer(self, uid: str, timeout: float = 10.0) -> list[str]:
        """Present one card; return what the gate showed and said for it."""
        start = len(self.lines)
        self.send(uid)
        self.wait_for(lambda: any(x.startswith("say ") for x in self.lines[start:]), timeout)
        time.sleep(0.05)  # the LED line after the voice, if any
        return self.lines[start:]

    def finish(self, timeout: float = 60.0) -> int | None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(10)
            return None


def gate_config(workdir: Path, device_id: str, broker_url: str, *, password: str | None = None,
                ca_file: Path | None = None) -> Path:
    """The gate's TOML as `genba-provision device add` writes it (its own account, the broker's CA),
    plus the demo's quick timings."""
    path = workdir / f"{device_id}.toml"
    lines = [
        f'device_id = "{device_id}"',
        f'broker_url = "{broker_url}"',
        f'data_dir = "{workdir / device_id}"',
        'direction = "auto"  # the server says in or out (its device record, pushed in the config)',
        "debounce_s = 2",
        "ack_timeout_s = 2",
    ]
    if password is not None:
        lines += [f'username = "{device_id}"', f'password = "{password}"']
    if ca_file is not None:
        lines.append(f'ca_file = "{ca_file}"')
    lines += ["[pins]", "motion = false"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _summary(lines: list[str]) -> str:
    """'tap 3 entry | LED green | beep short | 「入場を記録しました」' from the gate's event lines."""
    parts = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "tap":
            seq, _, shown = rest.partition(" ")
            parts.insert(0, f"記録 #{seq} ({shown})")
        elif word == "led" and rest != "off" and not rest.startswith("amber blink-slow"):
            parts.append(f"LED {rest}")
        elif word == "beep":
            parts.append(f"ブザー {rest}")
        elif word == "say":
            parts.append(f"「{rest}」")
    if not any(p.startswith("記録") for p in parts):
        parts.insert(0, "（記録なし: 直前と同じカード）")
    return " / ".join(parts)


def play(gates: dict[str, SimGate], day: date, script: dict[str, list[Step]]) -> None:
    """Run the script gate by gate, in time order, printing what each gate showed and said."""
    for device_id, steps in script.items():
        gate = gates[device_id]
        print(f"\n[{device_id}]")
        current = None
        for step in steps:
            if step.at != current:
                hh, mm = (int(x) for x in step.at.split(":"))
                gate.send("!clock " + datetime.combine(day, clock_time(hh, mm), tzinfo=JST).isoformat())
                current = step.at
            answer = gate.answer(step.uid)
            print(f"  {step.at}  {pad(step.who, 16)}{_summary(answer)}", flush=True)
