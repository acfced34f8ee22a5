"""The gate's voice: phrases really rendered by espeak-ng through pyttsx3, played by a player process.

The only stand-in is the audio device: a small shell script takes aplay's place where a test needs to
see what was played (this machine has no sound card, as many gates have none).
"""

from __future__ import annotations

import logging
import stat
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware.config import Voice as VoiceConfig
from firmware.errors import ConfigError
from firmware.voice import PHRASES, Voice


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def voices() -> Iterator[Callable[..., Voice]]:
    made: list[Voice] = []

    def build(cache_dir: Path, events: list[str] | None = None, simulate: bool = False, **cfg: object) -> Voice:
        v = Voice(
            VoiceConfig(**cfg), cache_dir, events=events.append if events is not None else None, simulate=simulate
        )
        made.append(v)
        return v

    yield build
    for v in made:
        v.close()


@pytest.fixture
def speaker(tmp_path: Path) -> tuple[Path, Path]:
    """A player standing in for aplay: logs 'start FILE' and 'stop FILE' (when replaced), plays 'for ever'."""
    log = tmp_path / "played.log"
    script = tmp_path / "fake-aplay"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "start $1" >> "{log}"\n'
        f'trap \'echo "stop $1" >> "{log}"; exit 0\' TERM\n'
        "while :; do sleep 0.05; done\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def played(log: Path) -> list[str]:
    if not log.exists():
        return []
    steps = [line.split(" ", 1) for line in log.read_text().splitlines()]
    return [f"{action} {Path(path).name.split('-')[0]}" for action, path in steps]  # "start prompt"


def assert_wav(path: Path) -> None:
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", path
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        seconds = w.getnframes() / w.getframerate()
    assert seconds > 0.5, (path, seconds)  # speech, not a click
    assert len(data) > 20_000


def test_every_phrase_is_rendered_to_a_wav_file_by_espeak_ng(voices, tmp_path) -> None:
    voice = voices(tmp_path / "voice")
    voice.prepare()
    assert voice.wait_rendered()
    for key in PHRASES:
        assert_wav(voice.clip_path(key))
    assert voice.renderer == "pyttsx3"


def test_phrases_are_rendered_once_and_kept_across_restarts(voices, tmp_path) -> None:
    first = voices(tmp_path / "voice")
    first.prepare()
    assert first.wait_rendered()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "voice").glob("*.wav")}
    assert len(stamps) == len(PHRASES)
    again = voices(tmp_path / "voice")  # the gate restarted
    again.prepare()
    assert again.wait_rendered()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "voice").glob("*.wav")} == stamps


def test_a_new_volume_renders_anew_and_drops_the_old_files(voices, tmp_path) -> None:
    loud = voices(tmp_path / "voice", volume=1.0)
    loud.prepare()
    assert loud.wait_rendered()
    quiet = voices(tmp_path / "voice", volume=0.3)
    assert quiet.clip_path("entry") != loud.clip_path("entry")
    quiet.prepare()
    assert quiet.wait_rendered()
    assert sorted((tmp_path / "voice").glob("*.wav")) == sorted(quiet.clip_path(k) for k in PHRASES)
    assert_wav(quiet.clip_path("entry"))


def test_the_config_overrides_a_spoken_form_but_not_the_display_text(voices, tmp_path) -> None:
    events: list[str] = []
    plain = voices(tmp_path / "voice")
    custom = voices(tmp_path / "voice", events, phrases={"entry": "おはようございます。にゅうじょう しました"})
    assert custom.phrases["entry"].spoken == "おはようございます。にゅうじょう しました"
    assert custom.clip_path("entry") != plain.clip_path("entry")
    assert custom.clip_path("exit") == plain.clip_path("exit")
    custom.prepare()
    assert custom.wait_rendered()
    assert_wav(custom.clip_path("entry"))
    custom.say("entry")
    assert events == ["say 入場を記録しました"]


def test_an_unknown_phrase_in_the_config_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="entyr"):
        Voice(VoiceConfig(phrases={"entyr": "にゅうじょう"}), tmp_path)


def test_say_does_not_wait_for_synthesis_and_plays_once_rendered(voices, tmp_path, speaker) -> None:
    script, log = speaker
    events: list[str] = []
    voice = voices(tmp_path / "voice", events, player=str(script))
    voice.say("prompt")  # nothing rendered yet: say() hands the work to the render thread
    assert not voice.clip_path("prompt").exists()
    assert events == ["say カードをタッチしてください"]
    assert wait_for(lambda: played(log) == ["start prompt"])
    assert_wav(voice.clip_path("prompt"))


def test_a_new_phrase_replaces_the_one_playing(voices, tmp_path, speaker) -> None:
    script, log = speaker
    voice = voices(tmp_path / "voice", player=str(script))
    voice.prepare()
    assert voice.wait_rendered()
    voice.say("prompt")
    assert wait_for(lambda: played(log) == ["start prompt"])
    voice.say("entry")  # a worker tapped while the prompt was still speaking
    assert wait_for(lambda: played(log) == ["start prompt", "stop prompt", "start entry"])
    voice.close()
    assert played(log) == ["start prompt", "stop prompt", "start entry", "stop entry"]


def test_a_failing_player_is_logged_once_and_harmless(voices, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="genba.gate.voice")
    broken = tmp_path / "no-soundcard"
    broken.write_text("#!/bin/sh\necho 'aplay: main:831: audio open error: No such file or directory' >&2\nexit 1\n")
    broken.chmod(0o755)
    events: list[str] = []
    voice = voices(tmp_path / "voice", events, player=str(broken))
    voice.prepare()
    assert voice.wait_rendered()
    for key in ("entry", "exit", "duplicate"):
        voice.say(key)
        time.sleep(0.2)
    errors = lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # noqa: E731
    assert wait_for(lambda: len(errors()) == 1)
    assert "audio open error" in errors()[0]
    assert events == ["say 入場を記録しました", "say 退場を記録しました", "say 記録済みです"]


def test_a_missing_player_is_logged_once_and_harmless(voices, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="genba.gate.voice")
    voice = voices(tmp_path / "voice", player="/nonexistent/aplay")
    voice.prepare()
    assert voice.wait_rendered()
    voice.say("entry")
    voice.say("exit")
    errors = lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # noqa: E731
    assert wait_for(lambda: len(errors()) == 1)
    time.sleep(0.2)
    assert len(errors()) == 1 and "/nonexistent/aplay" in errors()[0]


def test_a_rendering_failure_is_logged_once_and_say_still_reports(voices, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="genba.gate.voice")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    events: list[str] = []
    voice = voices(blocker / "voice", events)  # the cache cannot be created: nothing renders
    voice.prepare()
    assert voice.wait_rendered()
    voice.say("entry")
    assert voice.wait_rendered()
    voice.say("entry")
    assert voice.wait_rendered()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "rendering failed" in errors[0]
    assert events == ["say 入場を記録しました", "say 入場を記録しました"]


def test_simulation_prints_what_is_said_renders_but_never_plays(voices, tmp_path, speaker) -> None:
    script, log = speaker
    events: list[str] = []
    voice = voices(tmp_path / "voice", events, simulate=True, player=str(script))
    voice.prepare()
    assert voice.wait_rendered()
    voice.say("not_on_roster")
    voice.say("identify", text="げーと いち")
    assert voice.wait_rendered()
    time.sleep(0.3)
    assert events == ["say 作業員名簿に登録されていません。職長に連絡してください", "say げーと いち"]
    assert_wav(voice.clip_path("identify", "げーと いち"))
    assert not log.exists()


def test_a_disabled_voice_says_nothing_and_renders_nothing(voices, tmp_path) -> None:
    events: list[str] = []
    voice = voices(tmp_path / "voice", events, enabled=False)
    voice.prepare()
    voice.say("entry")
    assert voice.wait_rendered()
    assert events == []
    assert not (tmp_path / "voice").exists()


def test_open_jtalk_missing_falls_back_to_espeak_ng_with_a_log_line(voices, tmp_path, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger="genba.gate.voice")
    monkeypatch.setenv("PATH", str(tmp_path))  # no open_jtalk binary on this PATH
    voice = voices(tmp_path / "voice", renderer="open_jtalk")
    assert voice.renderer == "pyttsx3"
    assert any("open_jtalk" in r.getMessage() and "pyttsx3" in r.getMessage() for r in caplog.records)
    voice.prepare()
    assert voice.wait_rendered()
    assert_wav(voice.clip_path("prompt"))
