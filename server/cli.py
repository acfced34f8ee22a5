"""genba-server: set up, run and feed the GenbaGate server.

Every command takes --config FILE (TOML, see server/config.py); errors say what to do next and
exit non-zero, never with a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import re
import signal
import sys
import threading
import unicodedata
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, NoReturn, cast

from server import config as config_mod
from server import updates
from server.errors import GenbaError
from server.services.context import Context
from server.store.database import Store


def _context(cfg: config_mod.ServerConfig) -> Context:
    return Context(
        Store(cfg.database_url),
        token_ttl=timedelta(hours=cfg.auth.token_ttl_hours),
        max_failed_logins=cfg.auth.max_failed_logins,
        lock_duration=timedelta(minutes=cfg.auth.lock_minutes),
        site_fee_per_worker_day=cfg.reports.site_fee_per_worker_day,
    )


def cmd_init(args: argparse.Namespace) -> int:
    from server.domain.accounts import check_new_password
    from server.services import accounts
    from server.store import migrate

    cfg = config_mod.load(args.config)
    password = None
    if args.operator:
        # Ask and check the password before touching the database, so a refusal changes nothing.
        password = args.operator_password or os.environ.get("GENBA_OPERATOR_PASSWORD")
        if not password:
            if not sys.stdin.isatty():
                print(
                    "運用管理者のパスワードを --operator-password か GENBA_OPERATOR_PASSWORD で指定してください"
                    "\n(give the operator password with --operator-password or GENBA_OPERATOR_PASSWORD)",
                    file=sys.stderr,
                )
                return 2
            password = getpass.getpass(f"運用管理者 {args.operator} のパスワード: ")
            if getpass.getpass("もう一度入力してください: ") != password:
                print("パスワードが一致しません。もう一度 init を実行してください (passwords differ)", file=sys.stderr)
                return 2
        check_new_password(password, args.operator)
    migrate.upgrade(cfg.database_url)
    print(f"データベースを作成・更新しました: {cfg.database_url} (revision {migrate.current(cfg.database_url)})")
    if args.operator and password:
        ctx = _context(cfg)
        try:
            accounts.create_operator(ctx, args.operator, password)
        except GenbaError as exc:
            if exc.code != "login_id_taken":
                raise
            print(f"運用管理者 {args.operator} はすでにあります（変更していません）")
        else:
            print(f"運用管理者を作成しました: {args.operator}")
        ctx.store.dispose()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.api.app import create_app

    cfg = config_mod.load(args.config)
    if not _require_db(cfg):
        return 2
    ctx = _context(cfg)
    ingest = _start_ingest(ctx, cfg, args) if cfg.mqtt.enabled and not args.no_mqtt else None
    # /healthz reports this ingest's broker link; with --no-mqtt another process (genba-server ingest) has it.
    app = create_app(ctx, ingest, mqtt_configured=cfg.mqtt.enabled, on_shutdown=ingest.stop if ingest else None)
    host = args.host or cfg.http.host
    port = args.port or cfg.http.port
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        if ingest is not None:
            ingest.stop()
    return 0


def _require_db(cfg: config_mod.ServerConfig) -> bool:
    from server.store import migrate

    sqlite_file = cfg.database_url.removeprefix("sqlite:///") if cfg.database_url.startswith("sqlite:///") else None
    if (sqlite_file is not None and not os.path.exists(sqlite_file)) or migrate.current(cfg.database_url) is None:
        print(
            "データベースが初期化されていません。先に genba-server init --config FILE を実行してください"
            "\n(the database is not initialised: run genba-server init --config FILE first)",
            file=sys.stderr,
        )
        return False
    return True


def _start_ingest(ctx: Context, cfg: config_mod.ServerConfig, args: argparse.Namespace) -> Any:
    from server.ingest import MqttIngest

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ingest = MqttIngest(ctx, cfg.mqtt, client_id=getattr(args, "client_id", None))
    ingest.start()
    return ingest


def cmd_ingest(args: argparse.Namespace) -> int:
    """The MQTT side alone: for a second ingest worker, or a host without the HTTP API."""
    cfg = config_mod.load(args.config)
    if not _require_db(cfg):
        return 2
    ctx = _context(cfg)
    if args.metrics_port:
        from prometheus_client import start_http_server

        from server import metrics

        # This worker's counters, queue and broker link (the gates' last contact is in the API's /metrics).
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.REGISTRY)
    ingest = _start_ingest(ctx, cfg, args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    ingest.stop()
    ctx.store.dispose()
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """One dated backup of the database (SQLite online backup, or pg_dump), then prune the old ones."""
    from server import backup

    cfg = config_mod.load(args.config)
    result = backup.backup(cfg.database_url, args.dir, keep_days=args.keep_days)
    print(f"バックアップを作成しました (written): {result.path}")
    for path in result.pruned:
        print(f"{args.keep_days}日より古いバックアップを削除しました (pruned): {path}")
    return 0


#: Where a wrong site number sends the site office: the list that shows each site's 現場ID.
_SITES_HINT = "genba-server sites で一覧を確認してください"


def _report(args: argparse.Namespace, make: Any) -> int:
    """Print one report for the site office; it runs on the server, with the 元請's view of the site.

    ``--site`` is what staff typed: a 現場ID (str, as CCUS shows it) or the internal number (int);
    ``make(ctx, site_id)`` gets the internal number either way."""
    from server.services import sites

    cfg = config_mod.load(args.config)
    if not _require_db(cfg):
        return 2
    ctx = _context(cfg)
    ref: str | int = args.site
    try:
        site_id = sites.site_id_of(ctx, ref) if isinstance(ref, str) else ref
        print(make(ctx, site_id))
    except GenbaError as exc:
        if exc.code != "site_not_found":
            raise
        named = f"現場ID {ref}" if isinstance(ref, str) else f"番号 {ref}"
        print(f"エラー: 現場が見つかりません（{named}）。{_SITES_HINT}\n({exc.code}: {exc.message_en})",
              file=sys.stderr)
        return 2
    finally:
        ctx.store.dispose()
    return 0


def cmd_attendance(args: argparse.Namespace) -> int:
    from server import reports

    if args.month:
        return _report(args, lambda ctx, site_id: reports.month_table(ctx, site_id, args.month))
    return _report(args, lambda ctx, site_id: reports.attendance_table(ctx, site_id, args.day))


def cmd_devices(args: argparse.Namespace) -> int:
    from server import reports

    return _report(args, lambda ctx, site_id: reports.devices_table(ctx, site_id))


def cmd_corrections(args: argparse.Namespace) -> int:
    from server import reports

    state = None if args.state == "all" else args.state
    return _report(args, lambda ctx, site_id: reports.corrections_table(ctx, site_id, state))


def cmd_sites(args: argparse.Namespace) -> int:
    """Every site with the 現場ID staff pass to --site, its 元請, 工期 and gates."""
    from server.reports import table
    from server.services import sites

    cfg = config_mod.load(args.config)
    if not _require_db(cfg):
        return 2
    ctx = _context(cfg)
    try:
        listed = sites.office_list(ctx)
    finally:
        ctx.store.dispose()
    if not listed:
        print("現場は登録されていません（元請の事業者が API の POST /api/v1/sites で登録します）")
        return 0
    rows = [[s["ccus_id"], s["name"], s["prime"]["name"], s["prime"]["ccus_id"],
             f"{s['period']['start']}〜{s['period']['end']}", str(s["gates"]), str(s["id"])] for s in listed]
    print(table(["現場ID", "現場名", "元請", "元請の事業者ID", "工期", "ゲート", "番号"], rows))
    return 0


def _write_atomically(path: str, chunks: Any) -> None:
    """Write the file whole or not at all: into a temporary file beside it, then renamed over it, so
    a refused or failed report never leaves a half-written file where staff expect the report."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".genba-report-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        # mkstemp makes the file 0600; a report gets what any file the user writes gets (the umask),
        # so an office with umask 077 keeps 生年月日 and 住所 to itself. Read without changing it:
        # os.umask has no getter, and the CLI is one thread here.
        mask = os.umask(0o077)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):  # never created or already renamed
            os.unlink(tmp)
        raise


def cmd_report(args: argparse.Namespace) -> int:
    """One 帳票 as an account sees it: the account logs in as on the web (same password, same
    throttle), so the file holds exactly what the API would give that account, never more."""
    import json

    from server.exports.report import Tabular, render
    from server.forms.layout import Form, to_bytes
    from server.services import catalog, logins

    def refuse(message: str, code: str) -> int:
        print(f"エラー: {spec.number} {spec.title} は{message} ({code})", file=sys.stderr)
        return 2

    spec = catalog.REPORTS[args.name]
    ref = getattr(args, spec.subject)
    if ref is None:
        return refuse(f" --{spec.subject} {catalog.SUBJECT_LABELS[spec.subject]} で対象を指定してください",
                      "missing_subject")
    if spec.needs_month and not args.month:
        return refuse(" --month YYYY-MM で月を指定してください", "missing_month")
    if spec.is_form and args.format != "xlsx":
        return refuse("印刷用の様式です。--format xlsx（既定）で書き出してください", "form_is_xlsx_only")
    company = args.company if spec.takes_company else None
    if spec.subject != "company" and args.company and not spec.takes_company:
        return refuse(" --company を使いません", "company_not_taken")
    cfg = config_mod.load(args.config)
    if not _require_db(cfg):
        return 2
    password = os.environ.get("GENBA_PASSWORD") or getpass.getpass(f"{args.login} のパスワード: ")
    ctx = _context(cfg)
    token: str | None = None
    try:
        # The CLI runs on the server host: its logins count as a local client's.
        token = str(logins.login(ctx, args.login, password, source="127.0.0.1")["token"])
        actor = logins.authenticate(ctx, token)
        asked = catalog.Asked(
            subject_id=ref if isinstance(ref, int) else catalog.subject_id(ctx, spec.subject, ref),
            month=args.month or "",
            company_id=catalog.subject_id(ctx, "company", company) if company else None,
        )
        report = spec.make(ctx, actor, asked)
        chunks: Any
        if spec.is_form:
            chunks = iter([to_bytes(cast(Form, report).workbook())])
        elif args.format == "json":
            chunks = iter([json.dumps(cast(Tabular, report).as_json(), ensure_ascii=False, indent=2).encode() + b"\n"])
        else:
            chunks, _ = render(cast(Tabular, report), args.format, args.encoding)
        out = args.out or f"{report.file_stem}.{args.format}"
        if out == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        else:
            _write_atomically(out, chunks)
            print(f"{spec.number} {spec.title} を書き出しました: {out}", file=sys.stderr)
    finally:
        if token is not None:
            with contextlib.suppress(GenbaError):  # the session ends with the command either way
                logins.logout(ctx, token)
        ctx.store.dispose()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import codecs

    from server import importer

    def error(message: str, code: str) -> None:
        print(f"エラー: {message} ({code})", file=sys.stderr)

    def warn_ignored(ignored: Sequence[str], hints: dict[str, str]) -> None:
        warning = importer.ignored_columns_warning(ignored, hints)
        if warning:
            print(f"警告: {warning} (ignored_columns)", file=sys.stderr)

    try:
        codecs.lookup(args.encoding)
    except LookupError:
        error(
            f"文字コード名が正しくありません: {args.encoding}（cp932 か utf-8-sig を指定してください）",
            "unknown_encoding",
        )
        return 2
    cfg = config_mod.load(args.config)
    ctx = _context(cfg)
    try:
        with open(args.file, encoding=args.encoding, newline="") as fh:
            result = importer.import_csv(ctx, args.kind, fh, dry_run=args.dry_run)
    except FileNotFoundError:
        error(f"ファイルがありません: {args.file}", "file_not_found")
        return 2
    except UnicodeDecodeError:
        error(
            f"文字コードを読めません。--encoding cp932（Shift_JIS）か utf-8-sig を指定してください: {args.file}",
            "undecodable_file",
        )
        return 2
    except OSError as exc:
        error(f"ファイルを読めません: {args.file}（{exc.strerror}）", "file_unreadable")
        return 2
    except importer.ImportFailed as exc:
        warn_ignored(exc.ignored_columns, exc.typo_hints)
        print(
            f"エラー: 取り込みを中止しました（何も登録・更新していません）。{len(exc.problems)}件の誤りがあります"
            f" ({exc.code}):",
            file=sys.stderr,
        )
        for p in exc.problems:
            print(f"  {p.line}行目: {p.message} ({p.code})", file=sys.stderr)
        return 1
    finally:
        ctx.store.dispose()
    warn_ignored(result.ignored_columns, result.typo_hints)
    counts = f"追加 {result.added}件、更新 {result.updated}件、変更なし {result.unchanged}件"
    label = importer.KIND_LABELS[args.kind]
    if result.dry_run:
        print(f"確認のみ（--dry-run）、何も書き込んでいません。{label}を取り込むと: {counts}")
    else:
        print(f"{label}を取り込みました: {counts}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"1以上の整数を指定してください (a positive integer): {text}")
    return value


def _id(text: str) -> int:
    """An id as the API gives it (site 1, 2, …): the same bounds as the API's paths."""
    from server.api.schemas import MAX_ID

    value = _positive_int(text)
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"番号が大きすぎます。API の id を指定してください (an id): {text}")
    return value


def _site(text: str) -> str | int:
    """What staff type after --site: a 現場ID (14 digits, as CCUS shows it; full-width digits, spaces
    and hyphens are fine), else the internal number (`genba-server sites` shows both)."""
    from server.api.schemas import MAX_ID
    from server.domain import ids

    with contextlib.suppress(GenbaError):  # not a 現場ID: read on as the internal number
        return ids.ccus_id("site", text)
    written = unicodedata.normalize("NFKC", text).strip()
    digits = written.replace(" ", "").replace("-", "")
    if digits.isdecimal() and (len(digits) > len(str(MAX_ID)) or digits != written):
        # Longer than any internal number, or written like one: a 現場ID with digits missing or extra.
        raise argparse.ArgumentTypeError(
            f"現場IDは14桁です（入力は{len(digits)}桁）。入力: {text} (a 現場ID has 14 digits)"
        )
    if not text.strip().isdecimal():
        raise argparse.ArgumentTypeError(
            f"現場ID（14桁の数字）か現場の番号（1以上の整数）を指定してください。入力: {text}"
            " (a 14-digit 現場ID, or the site's number)"
        )
    return _id(text)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"ポート番号は 1〜65535 で指定してください (a TCP port): {text}")
    return value


def _month(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text.strip()):
        raise argparse.ArgumentTypeError(
            f"月は YYYY-MM で指定してください（例: 2026-11）。入力: {text} (a month is YYYY-MM)")
    return text.strip()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"日付は YYYY-MM-DD で指定してください（例: 2026-12-04）。入力: {text} (a date is YYYY-MM-DD)"
        ) from None


#: argparse's own sentences (it speaks English) → what a site's operator reads. Matched in order.
_ARGPARSE_JA: tuple[tuple[str, str], ...] = (
    (r"argument (?P<arg>\S+): (?P<rest>.*[^\x00-\x7f].*)", "{arg}: {rest}"),  # our converters' Japanese
    (r"the following arguments are required: (?P<args>.*)", "次の指定が必要です: {args}"),
    (r"argument (?P<arg>\S+): invalid choice: (?P<value>.*?) \(choose from (?P<choices>.*)\)",
     "{arg}: {value} は選べません。次のどれかを指定してください: {choices}"),
    (r"argument (?P<arg>\S+): expected one argument", "{arg} のあとに値を指定してください"),
    (r"argument (?P<arg>\S+): invalid (?P<kind>\S+) value: (?P<value>.*)", "{arg}: 値が正しくありません: {value}"),
    (r"unrecognized arguments: (?P<args>.*)", "知らない指定です: {args}"),
)


class _Parser(argparse.ArgumentParser):
    """argparse, answering in Japanese: what was wrong and what to do, exit code 2, no traceback."""

    def error(self, message: str) -> NoReturn:
        ja = message
        for pattern, template in _ARGPARSE_JA:
            m = re.fullmatch(pattern, message)
            if m:
                ja = template.format(**m.groupdict())
                break
        english = f"\n({message})" if message.isascii() else ""  # our converters already say both
        self.print_usage(sys.stderr)
        self.exit(2, f"エラー: {ja}\n（{self.prog} --help で使い方を表示します）{english}\n")


_SITE_HELP = "現場ID（14桁、CCUS の表示のまま）か、10桁までの現場の番号（API の site id）。一覧は genba-server sites"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="genba-server",
        description="GenbaGate（現場ゲート）サーバー: 現場・施工体制・作業員名簿・就業履歴。",
        epilog="例: genba-server init --config /etc/genbagate/server.toml --operator admin",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", metavar="FILE", help="設定ファイル（TOML）。省略時は既定値（./genba.db）")

    sp = sub.add_parser(
        "init",
        help="データベースを作成・更新し、運用管理者を作る",
        description="データベースを最新のスキーマに更新します（何度実行しても安全）。",
    )
    common(sp)
    sp.add_argument("--operator", metavar="LOGIN_ID", help="作成する運用管理者のログインID")
    sp.add_argument("--operator-password", metavar="PASSWORD", help="省略時は GENBA_OPERATOR_PASSWORD か入力を求める")
    sp.set_defaults(func=cmd_init)

    sp = sub.add_parser(
        "run", help="サーバーを起動する（HTTP API と MQTT の打刻受信）",
        description="API を /api/v1 で提供し、設定の [mqtt] のブローカーからゲートの打刻と状態を受け取り、"
        "就業履歴を作ります（確定後にゲートへ Ack）。作業員名簿の変更はゲートへ配信します。",
    )
    common(sp)
    sp.add_argument("--host", help="待ち受けアドレス（設定ファイルより優先）")
    sp.add_argument("--port", type=_port, help="待ち受けポート（設定ファイルより優先）")
    sp.add_argument("--no-mqtt", action="store_true", help="MQTT の受信を行わない（HTTP API のみ）")
    sp.add_argument("--client-id", help="MQTT のクライアントID（設定の mqtt.client_id より優先）")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "ingest", help="MQTT の打刻受信だけを起動する（2台目以降の受信プロセス用）",
        description="共有サブスクリプションで打刻を分担します。プロセスごとに別の --client-id を付けてください。",
    )
    common(sp)
    sp.add_argument("--client-id", help="MQTT のクライアントID（プロセスごとに一意）")
    sp.add_argument("--metrics-port", type=_port, metavar="PORT",
                    help="この受信プロセスの /metrics（Prometheus）を待ち受けるポート（省略時は提供しない）")
    sp.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                    help="/metrics の待ち受けアドレス（既定 127.0.0.1。運用ネットワークの内側だけに）")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser(
        "backup", help="データベースを日付つきのファイルにバックアップし、古いものを削除する",
        description="SQLite はオンラインバックアップ（稼働中でも一貫したコピー、integrity_check で検査）で"
        " DIR/genba-YYYYmmdd-HHMMSS.db に、PostgreSQL は pg_dump --format=custom で .dump に書き込みます"
        "（権限 0600）。その後、ファイル名の日時が --keep-days 日より古いバックアップを削除します。",
    )
    common(sp)
    sp.add_argument("--dir", required=True, metavar="DIR", help="バックアップ先のディレクトリ（あらかじめ作成）")
    sp.add_argument("--keep-days", type=_positive_int, default=14, metavar="N",
                    help="バックアップを残す日数（既定 14）")
    sp.set_defaults(func=cmd_backup)

    sp = sub.add_parser(
        "attendance", help="現場の就業履歴（1日分）を表で表示する",
        description="入場・退場時刻、職種、立場、能力評価への有効性（無効ならその理由）を表示します。",
    )
    common(sp)
    sp.add_argument("--site", type=_site, required=True, help=_SITE_HELP)
    sp.add_argument("--day", type=_day, help="就業日 YYYY-MM-DD（省略時は今日）")
    sp.add_argument("--month", metavar="YYYY-MM", help="1日分ではなく月の就業日数（技能者ごと）を表示する")
    sp.set_defaults(func=cmd_attendance)

    sp = sub.add_parser(
        "devices", help="現場の入退場デバイスと状態を表示する",
        description="オンライン／オフライン、最終受信時刻、未送信の打刻数、リーダー、時刻同期を表示します。",
    )
    common(sp)
    sp.add_argument("--site", type=_site, required=True, help=_SITE_HELP)
    sp.set_defaults(func=cmd_devices)

    sp = sub.add_parser(
        "corrections", help="現場の事後補正（既定は承認待ち）を表示する",
        description="承認・否認は API（POST /api/v1/corrections/{id}/approve | reject）で元請が行います。",
    )
    common(sp)
    sp.add_argument("--site", type=_site, required=True, help=_SITE_HELP)
    sp.add_argument("--state", choices=["pending", "approved", "rejected", "all"], default="pending",
                    help="表示する状態（既定 pending = 申請中）")
    sp.set_defaults(func=cmd_corrections)

    sp = sub.add_parser(
        "sites", help="現場の一覧（現場ID・現場名・元請・工期・ゲート台数）を表示する",
        description="--site に指定する現場ID（と、API の番号）を確かめるための一覧です。",
    )
    common(sp)
    sp.set_defaults(func=cmd_sites)

    from server.services.catalog import REPORTS, ReportSpec

    def usage(s: ReportSpec) -> str:
        extra = (" --month" if s.needs_month else "") + (" [--company]" if s.takes_company else "")
        return f"  {s.name:<22} {s.number:<6} {s.title}（--{s.subject}{extra}{'、xlsx のみ' if s.is_form else ''}）"

    order = {n: i for i, n in enumerate(("1", "2", "3", "4", "-", "A"))}
    listing = "\n".join(usage(s) for s in sorted(REPORTS.values(), key=lambda s: (order[s.number[0]], s.number)))
    sp = sub.add_parser(
        "report", help="帳票を CSV・Excel・JSON で書き出す（アカウントでログインし、そのアカウントに見える範囲）",
        description="帳票を、指定したアカウントで見える範囲で書き出します。パスワードは環境変数 GENBA_PASSWORD か"
        "入力で渡します。現場・技能者・事業者は CCUS の ID（現場ID・技能者ID・事業者ID）で指定します。",
        epilog="帳票:\n" + listing + "\n\n例: genba-server report attendance-calendar --site 40224614116771 "
        "--month 2026-11 --format xlsx --login genba01",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(sp)
    sp.add_argument("name", choices=sorted(REPORTS), metavar="NAME", help="帳票の名前（下の一覧）")
    sp.add_argument("--login", required=True, metavar="LOGIN_ID", help="ログインID（このアカウントに見える範囲で出力）")
    sp.add_argument("--site", type=_site, help=_SITE_HELP)
    sp.add_argument("--worker", metavar="技能者ID", help="技能者ID（14桁）")
    sp.add_argument("--company", metavar="事業者ID",
                    help="事業者ID（14桁）。安全書類（AZ5・AZ6・AZ7）では現場のどの下請の書類か（省略時は自社）")
    sp.add_argument("--month", type=_month, metavar="YYYY-MM", help="対象の月（就業履歴の帳票）")
    sp.add_argument("--format", choices=["csv", "xlsx", "json"], default="xlsx", help="形式（既定 xlsx）")
    sp.add_argument("--encoding", choices=["utf-8", "cp932"], default="utf-8",
                    help="CSV の文字コード（既定 utf-8 BOM 付き。古い取り込みツールには cp932）")
    sp.add_argument("--out", metavar="FILE",
                    help="書き出すファイル（省略時は帳票名_ID_月.形式 をカレントディレクトリに。- は標準出力）")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser(
        "import",
        help="CCUSのCSV（事業者・技能者）を取り込む",
        description="CCUSから出力したCSVを取り込みます。新しいIDの行は登録し、登録済みのIDの行はファイルの内容で更新します"
        "（毎月の出力をそのまま取り込めます）。1行でも誤りがあれば何も登録・更新せず、行番号と理由を表示します。"
        " 列は docs/csv-import.md を参照。",
    )
    common(sp)
    sp.add_argument("kind", choices=["companies", "workers"], help="取り込む種類")
    sp.add_argument("file", help="CSVファイル")
    sp.add_argument(
        "--encoding", default="utf-8-sig", help="文字コード（既定 utf-8-sig。CCUSの出力が Shift_JIS なら cp932）"
    )
    sp.add_argument(
        "--dry-run",
        action="store_true",
        help="誤りの確認と件数（追加・更新・変更なし）の表示だけを行い、何も書き込まない",
    )
    sp.set_defaults(func=cmd_import)
    updates.add_parser(sub)  # genba-server update sign | send
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GenbaError as exc:
        print(f"エラー: {exc.message_ja}\n({exc.code}: {exc.message_en})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
