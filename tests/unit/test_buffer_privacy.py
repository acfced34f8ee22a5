"""The buffer keeps no card UID once a tap is acknowledged, and no key at all; an older buffer migrates
to that, and the secrets file is made and kept as the gate needs it. Real SQLite files in tmp_path, read
back as bytes (database, -wal, free pages included)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from firmware import buffer as buffer_module
from firmware import config as config_mod
from firmware.buffer import ACKED_UID_PREFIX, CONFIG_KEY, SCHEMA_VERSION, Buffer, acked_uid_digest
from firmware.errors import ConfigError
from firmware.keystore import SecretStore
from protocol.messages import DeviceConfig, decode, encode

AT = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)


def new_uid() -> str:
    return "01" + secrets.token_hex(7).upper()


def file_bytes(path: Path) -> bytes:
    """The database and whatever sits beside it (-wal, -shm), as a thief would read them."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")) if p.is_file())


def holds(blob: bytes, uid: str) -> bool:
    return any(f in blob for f in (uid.upper().encode(), uid.lower().encode(), bytes.fromhex(uid)))


def tap(buf: Buffer, uid: str) -> int:
    return buf.record(tech="felica", uid=uid, direction="in", at=AT, clock_synced=True, boot_id="b", mono_ms=1).seq


def store(tmp_path: Path) -> SecretStore:
    return SecretStore.open(tmp_path / "private" / "secrets.toml")


def old_buffer(path: Path, *, acked: list[str], unacked: list[str], pruned: list[str], config: bytes) -> None:
    """A buffer as firmware with schema 1 left it: UIDs in clear in every row, deleted rows' bytes still in
    the file (no secure_delete), and the DeviceConfig with its roster key in the meta table."""
    db = Database(path)
    db.execute("PRAGMA secure_delete = OFF")  # Debian builds SQLite with it on; SQLite's own default is off
    db.enable_wal()
    buffer_module._schema_v1(db)
    db.execute("PRAGMA user_version = 1")
    now = AT.isoformat()
    for uid in [*pruned, *acked, *unacked]:
        db.execute("INSERT INTO taps (card_tech, card_uid, direction, at, clock_synced, boot_id, mono_ms, created_at)"
                   " VALUES ('felica', ?, 'in', ?, 1, 'b', 1, ?)", [uid, now, now])
    for uid in [*pruned, *acked]:
        db.execute("UPDATE taps SET acked_at = ?, outcome = 'recorded', reason = ? WHERE card_uid = ?",
                   [now, f"card {uid} recorded", uid])
    db.conn.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # days pass between a tap and its pruning: it is in the file
    for uid in pruned:
        db.execute("DELETE FROM taps WHERE card_uid = ?", [uid])
    db["meta"].upsert({"key": CONFIG_KEY, "value": config}, pk="key")
    db.conn.commit()
    db.close()


def test_an_old_buffer_migrates_digests_its_acknowledged_uids_and_gives_its_roster_key_to_the_secrets_file(
        tmp_path: Path) -> None:
    path = tmp_path / "data" / "buffer.db"
    path.parent.mkdir()
    acked, unacked = [new_uid() for _ in range(40)], [new_uid() for _ in range(3)]
    pruned = [new_uid() for _ in range(200)]  # enough rows for whole pages to be freed
    roster_key = secrets.token_hex(16)
    config = encode(DeviceConfig(device_id="gate-01", version=3, roster_key=roster_key, roster={"ab" * 16: "ok"}))
    old_buffer(path, acked=acked, unacked=unacked, pruned=pruned, config=config)
    before = file_bytes(path)
    # What was at stake: every acknowledged UID, most of the pruned ones (in free pages), the roster key.
    assert all(holds(before, u) for u in acked) and roster_key.encode() in before
    assert sum(holds(before, u) for u in pruned) > len(pruned) // 2

    keys = store(tmp_path)
    with Buffer(path, secrets=keys) as buf:
        assert buf.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = {r["seq"]: r for r in buf.db.query("SELECT * FROM taps ORDER BY seq")}
        assert [t.card_uid for t in buf.unacked()] == unacked  # still to be sent: kept
        digests = [r["card_uid"] for r in rows.values() if r["acked_at"]]
        assert digests == [acked_uid_digest(keys.uid_key, u) for u in acked]
        assert all(r["reason"] == f"card {acked_uid_digest(keys.uid_key, u)} recorded"
                   for r, u in zip([r for r in rows.values() if r["acked_at"]], acked, strict=True))
        restored = decode(DeviceConfig, buf.load_config() or b"")
        assert restored.roster_key == roster_key and restored.version == 3
    after = file_bytes(path)
    assert [u for u in acked + pruned if holds(after, u)] == []
    assert all(holds(after, u) for u in unacked)
    assert roster_key.encode() not in after
    assert keys.roster_key == roster_key
    assert tomllib.loads((tmp_path / "private" / "secrets.toml").read_text())["roster_key"] == roster_key

    with Buffer(path, secrets=keys) as buf:  # opening again digests nothing twice
        assert [r["card_uid"] for r in buf.db.query("SELECT card_uid FROM taps WHERE acked_at IS NOT NULL")] \
            == [acked_uid_digest(keys.uid_key, u) for u in acked]


def test_an_acknowledged_tap_keeps_only_the_digest_of_its_uid_in_the_same_update(tmp_path: Path) -> None:
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    sent, waiting = new_uid(), new_uid()
    with Buffer(path, secrets=keys) as publisher, Buffer(path, secrets=keys, autocheckpoint=False) as tap_thread:
        first, second = tap(tap_thread, sent), tap(tap_thread, waiting)
        assert publisher.mark_acked([(first, "rejected", f"card {sent.lower()} is a random-ID card")]) == 1
        row = publisher.db.execute("SELECT card_uid, reason, acked_at FROM taps WHERE seq = ?", [first]).fetchone()
        assert row[0] == acked_uid_digest(keys.uid_key, sent) and row[0].startswith(ACKED_UID_PREFIX)
        assert row[1] == f"card {row[0]} is a random-ID card" and row[2] is not None
        assert [t.card_uid for t in publisher.unacked()] == [waiting]
        assert publisher.mark_acked([(first, "recorded", None)]) == 0  # a repeated ack changes nothing
        assert publisher.last_tap() is not None and publisher.last_tap().seq == second  # type: ignore[union-attr]
    blob = file_bytes(path)
    assert not holds(blob, sent) and holds(blob, waiting)


def a_minute_later() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=buffer_module.SCRUB_QUIET_S)


def test_the_wal_frames_of_acknowledged_taps_are_truncated_away_once_the_gate_is_quiet(tmp_path: Path) -> None:
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    uids = [new_uid() for _ in range(50)]
    housekeeping = Buffer(path, secrets=keys, clock=a_minute_later)  # no tap for SCRUB_QUIET_S by its clock
    with Buffer(path, secrets=keys, autocheckpoint=False) as tap_thread:
        seqs = [tap(tap_thread, u) for u in uids]
        housekeeping.mark_acked([(s, "recorded", None) for s in seqs])
        wal = Path(f"{path}-wal")
        assert any(holds(wal.read_bytes(), u) for u in uids)  # the INSERTs' frames, before the checkpoint
        assert housekeeping.checkpoint() > 0
        assert wal.stat().st_size == 0
        assert not any(holds(file_bytes(path), u) for u in uids)
    housekeeping.close()


def test_in_a_rush_the_checkpoint_keeps_the_wal_for_the_next_taps_and_owes_the_scrub_until_quiet(
        tmp_path: Path) -> None:
    """Truncating between taps made every next COMMIT grow the -wal file (a slower fsync): during a rush
    the WAL keeps its size and new taps overwrite it from the start; the scrub waits for a quiet minute."""
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    wal = Path(f"{path}-wal")
    acked = [new_uid() for _ in range(30)]
    publisher = Buffer(path, secrets=keys)
    with Buffer(path, secrets=keys, autocheckpoint=False) as tap_thread:
        publisher.mark_acked([(tap(tap_thread, u), "recorded", None) for u in acked])
        size = wal.stat().st_size
        assert publisher.checkpoint() > 0
        assert wal.stat().st_size == size and publisher._scrub_pending  # still owed
        later = new_uid()
        tap(tap_thread, later)
        assert wal.stat().st_size == size  # the tap's frames went to the start of the same file
        # The same connection once no tap came for SCRUB_QUIET_S: the scrub is done at last.
        publisher._clock = a_minute_later
        publisher.checkpoint()
        assert wal.stat().st_size == 0 and not publisher._scrub_pending
        blob = file_bytes(path)
        assert not any(holds(blob, u) for u in acked) and holds(blob, later)
    publisher.close()


def test_the_roster_key_is_kept_in_the_secrets_file_and_never_paired_with_another_configs_digests(
        tmp_path: Path) -> None:
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    key = secrets.token_hex(16)
    with Buffer(path, secrets=keys) as buf:
        buf.save_config(encode(DeviceConfig(device_id="gate-01", version=1, roster_key=key)))
        stored = bytes(buf.db.execute("SELECT value FROM meta WHERE key = ?", [CONFIG_KEY]).fetchone()[0])
        assert key.encode() not in stored and "roster_key" not in json.loads(stored)
        assert decode(DeviceConfig, buf.load_config() or b"").roster_key == key
    # Another secrets file (a key from elsewhere): the cached config comes back without a key, not a wrong one.
    other = SecretStore.open(tmp_path / "other" / "secrets.toml")
    other.set_roster_key(secrets.token_hex(16))
    with Buffer(path, secrets=other) as buf:
        assert decode(DeviceConfig, buf.load_config() or b"").roster_key == ""
    with Buffer(path, secrets=SecretStore.open(tmp_path / "private" / "secrets.toml")) as buf:  # read anew
        assert decode(DeviceConfig, buf.load_config() or b"").roster_key == key


def test_the_secrets_file_is_made_0600_atomically_and_narrowed_when_too_open(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "private" / "secrets.toml"
    first = SecretStore.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(first.uid_key) == 32 and [p.name for p in path.parent.iterdir()] == ["secrets.toml"]
    assert SecretStore.open(path).uid_key == first.uid_key  # made once, then read
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING):
        SecretStore.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "now 0600" in caplog.text
    path.write_text('password = "x"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown keys colour"):
        SecretStore.open(path)


def test_credentials_come_from_the_secrets_file_and_an_old_config_with_them_still_works(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    old = tmp_path / "old.toml"
    old.write_text(f'device_id = "gate-01"\nusername = "gate-01"\npassword = "in-toml"\ndata_dir = "{data}"\n')
    with caplog.at_level(logging.WARNING):
        cfg = config_mod.load(old)
    assert (cfg.username, cfg.password) == ("gate-01", "in-toml")
    assert cfg.secrets_file == tmp_path / "private" / "secrets.toml"
    assert "Move them to" in caplog.text and str(cfg.secrets_file) in caplog.text

    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "private" / "secrets.toml").write_text('username = "gate-01"\npassword = "in-secrets"\n')
    assert config_mod.load(old).password == "in-secrets"  # the secrets file wins
    new = tmp_path / "new.toml"
    absolute = tmp_path / "private" / "secrets.toml"
    new.write_text(f'device_id = "gate-01"\ndata_dir = "{data}"\nsecrets_file = "{absolute}"\n')
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert config_mod.load(new).password == "in-secrets"
    assert "Move them" not in caplog.text
    assert config_mod.load(new, secrets=False).password is None  # `status` needs none


def test_an_old_acked_row_pruned_after_the_migration_leaves_no_bytes(tmp_path: Path) -> None:
    """secure_delete: a row deleted by prune() is zeroed, not left in a free page."""
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    uids = [new_uid() for _ in range(100)]
    with Buffer(path, secrets=keys) as buf:
        seqs = [tap(buf, u) for u in uids]
        buf.mark_acked([(s, "recorded", None) for s in seqs])
        digests = [acked_uid_digest(keys.uid_key, u) for u in uids]
        buf.checkpoint()
        assert buf.prune(datetime.now(UTC) + timedelta(days=1)) == len(uids)
        buf.checkpoint()
    blob = file_bytes(path)
    assert not any(d.encode() in blob for d in digests) and not any(holds(blob, u) for u in uids)


def test_a_scrub_stays_owed_while_a_reader_holds_the_wal_and_is_done_once_it_lets_go(tmp_path: Path) -> None:
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    wal = Path(f"{path}-wal")
    uid = new_uid()
    publisher = Buffer(path, secrets=keys, clock=a_minute_later)
    reader = Buffer(path, secrets=keys)
    with Buffer(path, secrets=keys, autocheckpoint=False) as tap_thread:
        publisher.mark_acked([(tap(tap_thread, uid), "recorded", None)])
        reader.db.conn.execute("BEGIN")
        reader.db.conn.execute("SELECT count(*) FROM taps").fetchone()  # a read snapshot open on the WAL
        publisher.checkpoint()
        assert publisher._scrub_pending and wal.stat().st_size > 0
        reader.db.conn.execute("COMMIT")
        publisher.checkpoint()
        assert not publisher._scrub_pending and wal.stat().st_size == 0
        assert not holds(file_bytes(path), uid)
    reader.close()
    publisher.close()


def test_a_wall_clock_stepped_back_does_not_hold_the_scrub_back(tmp_path: Path) -> None:
    """Taps stamped by a clock an hour fast, then NTP steps it back: the newest tap is 'in the future',
    which is no rush."""
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    uid = new_uid()
    ahead = Buffer(path, secrets=keys, clock=lambda: datetime.now(UTC) + timedelta(hours=1), autocheckpoint=False)
    publisher = Buffer(path, secrets=keys)
    publisher.mark_acked([(tap(ahead, uid), "recorded", None)])
    publisher.checkpoint()
    assert Path(f"{path}-wal").stat().st_size == 0 and not publisher._scrub_pending
    ahead.close()
    publisher.close()


def test_a_scrub_owed_through_a_rush_that_never_pauses_is_done_after_scrub_max_defer_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = store(tmp_path)
    path = tmp_path / "buffer.db"
    uid = new_uid()
    publisher = Buffer(path, secrets=keys)
    with Buffer(path, secrets=keys, autocheckpoint=False) as tap_thread:
        publisher.mark_acked([(tap(tap_thread, uid), "recorded", None)])
        tap(tap_thread, new_uid())  # the rush goes on
        publisher.checkpoint()
        assert publisher._scrub_pending  # not quiet, not yet overdue
        monkeypatch.setattr(buffer_module, "SCRUB_MAX_DEFER_S", 0.0)
        publisher.checkpoint()
        assert not publisher._scrub_pending and Path(f"{path}-wal").stat().st_size == 0
        assert not holds(file_bytes(path), uid)
    publisher.close()


def test_a_buffer_opened_through_a_symlink_scrubs_the_wal_beside_the_real_file(tmp_path: Path) -> None:
    keys = store(tmp_path)
    real = tmp_path / "sd" / "buffer.db"
    real.parent.mkdir()
    link = tmp_path / "buffer.db"
    Buffer(real, secrets=keys).close()
    link.symlink_to(real)
    uid = new_uid()
    publisher = Buffer(link, secrets=keys, clock=a_minute_later)
    with Buffer(link, secrets=keys, autocheckpoint=False) as tap_thread:
        publisher.mark_acked([(tap(tap_thread, uid), "recorded", None)])
        assert Path(f"{real}-wal").stat().st_size > 0
        publisher.checkpoint()
        assert Path(f"{real}-wal").stat().st_size == 0 and not publisher._scrub_pending
    publisher.close()
    assert not holds(file_bytes(real), uid)
