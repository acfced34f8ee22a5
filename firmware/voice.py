"""The gate's voice: Japanese phrases rendered once to WAV files, played asynchronously.

A tap's feedback must never wait on speech synthesis, so every phrase is rendered up front
(`prepare()`, in a background thread) into ``cache_dir`` and `say()` only hands a ready file to a
player process. Each phrase has two forms: the display text (what site staff read in logs, in the
simulation output and in the README) and the spoken form. espeak-ng's Japanese voice reads kana
only (kanji come out as "Chinese letter"), so the default spoken forms are kana; `[voice.phrases]`
in the gate's TOML overrides the spoken form of any key below.

    key              display                                                    spoken (default, kana)
    entry            入場を記録しました                                         にゅうじょうを きろくしました
    exit             退場を記録しました                                         たいじょうを きろくしました
    duplicate        記録済みです                                               きろくずみです
    unknown_card     カードが登録されていません                                 かーどが とうろくされていません
    not_on_roster    作業員名簿に登録されていません。職長に連絡してください      (kana of the same)
    incomplete       (same as not_on_roster: on the roster without 職種・立場)
    unreadable_card  このカードは使えません。CCUSカードをタッチしてください     (kana; CCUS as しーしーゆーえす)
    tap_not_saved    記録できませんでした。現場事務所に連絡してください          (kana of the same)
    reader_check     カードリーダーを確認してください                           かーどりーだーを かくにんしてください
    prompt           カードをタッチしてください                                 かーどを たっちしてください
    selftest         スピーカーのテストです                                     すぴーかーの てすとです
    selftest_ok      点検が完了しました。使用できます                           (kana of the same)
    selftest_reader  カードリーダーが見つかりません。接続を確認してください     (kana of the same)
    selftest_network サーバーにつながりません。ネットワークを確認してください   (kana of the same)
    selftest_tls     暗号化の設定が合っていません。設定を確認してください       (kana of the same)
    selftest_broker  サーバーに接続を拒否されました。ゲートの登録を確認してください (kana of the same)
    selftest_clock   時刻が同期していません。インターネット接続を確認してください (kana of the same)
    selftest_disk    SDカードに書き込めません。SDカードを交換してください        (kana; SD as えすでぃー)
    selftest_sound   スピーカーから音が出ません                                 (display only: never spoken)
    selftest_pins    ゲートの部品が使えません。配線と設定を確認してください     (kana of the same)

Renderers:
- ``pyttsx3`` (default) over espeak-ng with the voice ``ja``. pyttsx3's `runAndWait()` hangs or raises
  "run loop already started" when re-entered, its espeak driver prints "Audio saved to …" on stdout
  (where `genba-gate run --simulate` prints its events) and an exception inside its ctypes callback
  leaves the loop spinning for ever. So one worker thread renders, and it does so through a short-lived
  child process (``python -m firmware.voice --render``) that calls `save_to_file` + `runAndWait` once per phrase,
  in sequence: its stdout is discarded, and a hang is a timeout and a kill, not a stuck gate.
- ``open_jtalk`` where the binary, a dictionary and an HTS voice are installed (Debian: open-jtalk,
  open-jtalk-mecab-naist-jdic, hts-voice-nitech-jp-atr503-m001). It reads kanji, so it speaks the display
  text unless the config overrides the spoken form. Missing → pyttsx3, with a log line.

Files are named by a hash of (renderer, voice, rate, volume, text), so changing a phrase or the
volume renders anew and unchanged phrases are not rendered again after a reboot; files no longer in
use are removed by `prepare()`. Volume is applied at render time (the player plays at full scale).

Playback: ``[voice] player`` (default ``aplay``; ``-q`` is added for aplay) with the WAV path appended,
started by a player thread. A `say()` while a clip plays stops that clip and plays the new one. If
rendering or playback fails (no audio device: aplay exits non-zero; espeak-ng missing) it is logged
once, and the gate carries on: LED and buzzer do not depend on the voice.

Every `say()` (voice enabled) also emits ``say <display text>`` to the EventSink. With
``simulate=True`` nothing is ever played; files are still rendered where possible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.config import Voice as VoiceConfig
from firmware.errors import ConfigError

log = logging.getLogger("genba.gate.voice")

EventSink = Callable[[str], None]

ESPEAK_VOICE = "ja"  # espeak-ng's Japanese voice (jpx/ja); `espeak-ng --voices=ja` lists it
RATE_WPM = 160  # a little slower than espeak's 175: the gate is outdoors and noisy
RENDER_TIMEOUT_S = 20.0  # per phrase, for the child process
STALE_S = 3.0  # a phrase that was not ready in time is not played later than this after its say()

OPEN_JTALK_DICTS = (
    "/var/lib/mecab/dic/open-jtalk/naist-jdic",
    "/usr/share/open_jtalk/dic",
)
OPEN_JTALK_VOICES = (
    "/usr/share/hts-voice/nitech-jp-atr503-m001/nitech_jp_atr503_m001.htsvoice",
    "/usr/share/hts-voice/mei/mei_normal.htsvoice",
)


@dataclass(frozen=True)
class Phrase:
    display: str  # written Japanese: logs, simulation output, README
    spoken: str  # what the renderer reads: kana for espeak-ng


_NOT_ON_ROSTER = Phrase(
    "作業員名簿に登録されていません。職長に連絡してください",
    "さぎょういんめいぼに とうろくされていません。しょくちょうに れんらくしてください",
)

PHRASES: dict[str, Phrase] = {
    "entry": Phrase("入場を記録しました", "にゅうじょうを きろくしました"),
    "exit": Phrase("退場を記録しました", "たいじょうを きろくしました"),
    "duplicate": Phrase("記録済みです", "きろくずみです"),
    "unknown_card": Phrase("カードが登録されていません", "かーどが とうろくされていません"),
    "not_on_roster": _NOT_ON_ROSTER,
    "incomplete": _NOT_ON_ROSTER,
    "unreadable_card": Phrase(
        "このカードは使えません。CCUSカードをタッチしてください",
        "このかーどは つかえません。しーしーゆーえす かーどを たっちしてください",
    ),
    "tap_not_saved": Phrase(
        "記録できませんでした。現場事務所に連絡してください",
        "きろくできませんでした。げんばじむしょに れんらくしてください",
    ),
    "recorded_unconfigured": Phrase(
        "記録しました。ゲートの設定を待っています", "きろくしました。げーとの せっていを まっています"),
    "recorded_unregistered": Phrase(
        "記録しました。このゲートは未登録です", "きろくしました。この げーとは みとうろくです"),
    "unregistered": Phrase(
        "このゲートはサーバーに登録されていません。元請に登録を依頼してください",
        "この げーとは さーばーに とうろくされていません。もとうけに とうろくを いらいしてください",
    ),
    "unconfigured": Phrase(
        "このゲートはまだ設定されていません。タッチは記録されます",
        "この げーとは まだ せっていされていません。たっちは きろくされます",
    ),
    "reader_check": Phrase("カードリーダーを確認してください", "かーどりーだーを かくにんしてください"),
    "prompt": Phrase("カードをタッチしてください", "かーどを たっちしてください"),
    "selftest": Phrase("スピーカーのテストです", "すぴーかーの てすとです"),
    # `genba-gate selftest`'s verdicts (firmware/feedback.py, Verdict)
    "selftest_ok": Phrase("点検が完了しました。使用できます", "てんけんが かんりょうしました。しようできます"),
    "selftest_reader": Phrase(
        "カードリーダーが見つかりません。接続を確認してください",
        "かーどりーだーが みつかりません。せつぞくを かくにんしてください",
    ),
    "selftest_network": Phrase(
        "サーバーにつながりません。ネットワークを確認してください",
        "さーばーに つながりません。ねっとわーくを かくにんしてください",
    ),
    "selftest_tls": Phrase(
        "暗号化の設定が合っていません。設定を確認してください",
        "あんごうかの せっていが あっていません。せっていを かくにんしてください",
    ),
    "selftest_broker": Phrase(
        "サーバーに接続を拒否されました。ゲートの登録を確認してください",
        "さーばーに せつぞくを きょひされました。げーとの とうろくを かくにんしてください",
    ),
    "selftest_clock": Phrase(
        "時刻が同期していません。インターネット接続を確認してください",
        "じこくが どうきしていません。いんたーねっと せつぞくを かくにんしてください",
    ),
    "selftest_disk": Phrase(
        "SDカードに書き込めません。SDカードを交換してください",
        "えすでぃー かーどに かきこめません。えすでぃー かーどを こうかんしてください",
    ),
    "selftest_sound": Phrase("スピーカーから音が出ません", "すぴーかーから おとが でません"),
    "selftest_pins": Phrase(
        "ゲートの部品が使えません。配線と設定を確認してください",
        "げーとの ぶひんが つかえません。はいせんと せっていを かくにんしてください",
    ),
}


@dataclass(frozen=True)
class _Renderer:
    name: str  # "pyttsx3" | "open_jtalk"
    ident: str  # goes into the cache key: another voice or dictionary renders anew
    argv: tuple[str, ...] = ()  # open_jtalk: binary -x DIC -m VOICE


@dataclass(frozen=True)
class _Clip:
    """One file to render: what to read and where the WAV goes."""

    text: str
    path: Path


class Voice:
    """Phrases: key → (display text, spoken kana); rendered once to WAV in cache_dir, played async.

    Threads: one render worker (owns all synthesis) and one player (owns the player process), both
    started on demand; `say()` only looks up a dict and sets an event, so the tap path never waits.
    """

    def __init__(
        self,
        cfg: VoiceConfig,
        cache_dir: Path,
        events: EventSink | None = None,
        simulate: bool = False,
        *,
        espeak_voice: str = ESPEAK_VOICE,
        rate: int = RATE_WPM,
    ) -> None:
        unknown = sorted(set(cfg.phrases) - set(PHRASES))
        if unknown:
            raise ConfigError(f"voice.phrases: unknown phrase {', '.join(unknown)} (known: {', '.join(PHRASES)})")
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self.simulate = simulate
        self._events = events
        self._espeak_voice = espeak_voice
        self._rate = rate
        self._renderer = self._choose_renderer(cfg.renderer)
        self.phrases = {key: Phrase(p.display, cfg.phrases.get(key, p.spoken)) for key, p in PHRASES.items()}
        self._lock = threading.Lock()
        self._ready: set[Path] = set()  # rendered files, checked on disk by the worker only
        self._queued: set[Path] = set()
        self._failed: set[Path] = set()  # not retried by say() (a Pi Zero should not re-spawn per tap)
        self._jobs: queue.Queue[tuple[str, list[_Clip]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._wanted: tuple[Path, float] | None = None  # a say() waiting for its file
        self._player = None if simulate else _Player(cfg.player)
        self._render_failed = False
        self._closed = False

    # --- public ----------------------------------------------------------------------------------
    @property
    def renderer(self) -> str:
        """The renderer in use ("pyttsx3" or "open_jtalk"), after any fallback."""
        return self._renderer.name

    def clip_path(self, key: str, text: str | None = None) -> Path:
        """Where the WAV for a phrase (or a free text) lives; rendered or not."""
        return self._clip(key, text).path

    def prepare(self) -> None:
        """Render every phrase in the background (returns at once); drop cached files no longer used."""
        if not self.cfg.enabled or self._closed:
            return
        clips = [self._clip(key) for key in self.phrases]
        with self._lock:
            self._failed.clear()
        self._submit(clips, prune=True)

    def say(self, key: str, text: str | None = None) -> None:
        """Speak a phrase (or `text`, e.g. the gate's name) without waiting; never raises."""
        try:
            self._say(key, text)
        except Exception:  # the voice must never break a tap
            log.exception("voice: say(%r) failed", key)

    def wait_rendered(self, timeout: float = 30.0) -> bool:
        """Block until the render queue is empty (start-up, tests, `genba-gate selftest`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queued:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=RENDER_TIMEOUT_S + 5)
        if self._player is not None:
            self._player.close()

    # --- internals -------------------------------------------------------------------------------
    def _say(self, key: str, text: str | None) -> None:
        if not self.cfg.enabled or self._closed:
            return
        if text is None and key not in self.phrases:
            log.warning("voice: no phrase %r", key)
            return
        display = text if text is not None else self.phrases[key].display
        if self._events is not None:
            self._events(f"say {display}")
        clip = self._clip(key, text)
        with self._lock:
            ready = clip.path in self._ready
            hopeless = clip.path in self._failed
            if not ready and not hopeless and not self.simulate:
                self._wanted = (clip.path, time.monotonic())
        if ready:
            if self._player is not None:
                self._player.play(clip.path)
        elif not hopeless:
            self._submit([clip])

    def _clip(self, key: str, text: str | None = None) -> _Clip:
        if text is not None:
            words, stem = text, "text"
        elif self._renderer.name == "open_jtalk" and key not in self.cfg.phrases:
            words, stem = self.phrases[key].display, key  # Open JTalk reads kanji: the written form reads best
        else:
            words, stem = self.phrases[key].spoken, key
        r = self._renderer
        ident = json.dumps([r.name, r.ident, self._rate, round(self.cfg.volume, 3), words], ensure_ascii=False)
        digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:16]
        return _Clip(words, self.cache_dir / f"{stem}-{digest}.wav")

    def _submit(self, clips: list[_Clip], prune: bool = False) -> None:
        with self._lock:
            fresh = [c for c in clips if c.path not in self._ready and c.path not in self._queued]
            self._queued.update(c.path for c in fresh)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="voice-render", daemon=True)
                self._worker.start()
        if prune:
            self._jobs.put(("prune", clips))
        if fresh:
            self._jobs.put(("render", fresh))

    def _work(self) -> None:
        """The render worker: the only thread that synthesises."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            what, batch = job
            if what == "prune":
                self._prune({c.path for c in batch})
                continue
            try:
                self._render(batch)
            except Exception as exc:  # a renderer may fail in any way: the gate carries on without voice
                self._render_failure(str(exc) or type(exc).__name__)
            done = {c.path for c in batch if _is_wav(c.path)}
            play: Path | None = None
            with self._lock:
                self._ready.update(done)
                self._failed.update(c.path for c in batch if c.path not in done)
                self._queued.difference_update(c.path for c in batch)
                if self._wanted is not None and self._wanted[0] in done:
                    if time.monotonic() - self._wanted[1] <= STALE_S:
                        play = self._wanted[0]
                    self._wanted = None
            if play is not None and self._player is not None:
                self._player.play(play)

    def _render(self, batch: list[_Clip]) -> None:
        todo = [c for c in batch if not _is_wav(c.path)]
        if not todo:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if self._renderer.name == "open_jtalk":
            for clip in todo:
                self._render_open_jtalk(clip)
        else:
            self._render_pyttsx3(todo)
        missing = [c.text for c in todo if not _is_wav(c.path)]
        if missing:
            raise RuntimeError(f"renderer produced no audio for {missing[0]!r}")

    def _render_pyttsx3(self, todo: list[_Clip]) -> None:
        request = {
            "voice": self._espeak_voice,
            "rate": self._rate,
            "volume": self.cfg.volume,
            "jobs": [{"text": c.text, "path": str(c.path)} for c in todo],
        }
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.run(
            [sys.executable, "-m", "firmware.voice", "--render"],
            input=json.dumps(request, ensure_ascii=False).encode("utf-8"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=RENDER_TIMEOUT_S * len(todo) + 10,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"pyttsx3/espeak-ng exited {proc.returncode}: {lines[-1] if lines else ''}")

    def _render_open_jtalk(self, clip: _Clip) -> None:
        part = clip.path.with_suffix(".part")
        gain_db = 20 * math.log10(max(self.cfg.volume, 0.01))
        cmd = [*self._renderer.argv, "-ow", str(part), "-g", f"{gain_db:.1f}"]
        proc = subprocess.run(
            cmd, input=clip.text.encode("utf-8"), capture_output=True, timeout=RENDER_TIMEOUT_S, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"open_jtalk exited {proc.returncode}: {proc.stderr.decode('utf-8', 'replace')[-200:]}")
        os.replace(part, clip.path)

    def _prune(self, keep: set[Path]) -> None:
        try:
            for path in self.cache_dir.glob("*.wav"):
                if path not in keep:
                    path.unlink(missing_ok=True)
        except OSError as exc:
            log.info("voice: could not tidy %s: %s", self.cache_dir, exc)

    def _render_failure(self, why: str) -> None:
        if not self._render_failed:
            self._render_failed = True
            log.error("voice: rendering failed (%s); the gate carries on with LED and beep", why)

    def _choose_renderer(self, wanted: str) -> _Renderer:
        if wanted == "open_jtalk":
            binary = shutil.which("open_jtalk")
            dic = next((d for d in OPEN_JTALK_DICTS if Path(d).is_dir()), None)
            htsvoice = next((v for v in OPEN_JTALK_VOICES if Path(v).is_file()), None)
            if binary and dic and htsvoice:
                return _Renderer("open_jtalk", f"{dic}|{htsvoice}", (binary, "-x", dic, "-m", htsvoice))
            missing = "the open_jtalk binary" if not binary else "its dictionary" if not dic else "an HTS voice"
            log.warning("voice: renderer open_jtalk chosen but %s is not installed; using pyttsx3 (espeak-ng)", missing)
        return _Renderer("pyttsx3", f"espeak-ng:{self._espeak_voice}")


class _Player:
    """Owns the one player process: a new clip stops the one playing; failures are logged once."""

    def __init__(self, command: str) -> None:
        argv = shlex.split(command) or ["aplay"]
        if Path(argv[0]).name == "aplay" and "-q" not in argv:
            argv.append("-q")
        self._argv = argv
        self._next: Path | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._failing = False
        self._thread: threading.Thread | None = None

    def play(self, path: Path) -> None:
        with self._lock:
            if self._closed:
                return
            self._next = path
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="voice-player", daemon=True)
                self._thread.start()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        proc: subprocess.Popen[bytes] | None = None
        while True:
            self._wake.wait(0.05 if proc is not None else None)
            self._wake.clear()
            with self._lock:
                path, self._next, closed = self._next, None, self._closed
            try:
                if proc is not None and proc.poll() is not None:
                    self._finished(proc)
                    proc = None
                if proc is not None and (path is not None or closed):
                    _stop(proc)  # a new clip replaces the one playing
                    proc = None
                if closed:
                    return
                if path is not None:
                    proc = subprocess.Popen(
                        [*self._argv, str(path)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
            except OSError as exc:  # no such player, too many processes, …
                self._failed(f"{self._argv[0]}: {exc.strerror or exc}")

    def _finished(self, proc: subprocess.Popen[bytes]) -> None:
        err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if proc.returncode == 0:
            if self._failing:
                log.info("voice: playback works again")
            self._failing = False
        else:
            self._failed(f"{self._argv[0]} exited {proc.returncode}: {err.splitlines()[-1] if err else ''}")

    def _failed(self, why: str) -> None:
        if not self._failing:
            self._failing = True
            log.error("voice: playback failed (%s); the gate carries on with LED and beep", why)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


def _is_wav(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(12)
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE" and path.stat().st_size > 44
    except OSError:
        return False


def _render_main() -> int:
    """Child process: render a batch with pyttsx3 (espeak driver), one `runAndWait` per file, in order."""
    request: dict[str, Any] = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    import pyttsx3

    engine = pyttsx3.init("espeak")
    wanted = request["voice"]
    voices = engine.getProperty("voices")
    if not any(v.id == wanted or v.id.endswith("/" + wanted) or wanted in (v.languages or []) for v in voices):
        print(f"espeak-ng has no voice {wanted!r} (install espeak-ng-data)", file=sys.stderr)
        return 2
    engine.setProperty("voice", wanted)
    engine.setProperty("rate", int(request["rate"]))
    engine.setProperty("volume", float(request["volume"]))
    for job in request["jobs"]:
        final = Path(job["path"])
        part = final.with_suffix(".part")
        # pyttsx3's espeak driver now and then ends runAndWait before the file is written (seen on a
        # loaded machine: an empty .part); the same text rendered again comes out whole.
        for _attempt in range(3):
            engine.save_to_file(job["text"], str(part))
            engine.runAndWait()
            if _is_wav(part):
                break
        else:
            print(f"no audio for {job['text']!r}", file=sys.stderr)
            return 3
        os.replace(part, final)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:
        sys.exit(_render_main())
    print("usage: python -m firmware.voice --render < request.json", file=sys.stderr)
    sys.exit(2)
