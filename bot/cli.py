"""The `duban` command line: serve, db upgrade, config check and apply, simulate, export,
inbox list and replay."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot import logs, schema
from bot.clock import SystemClock
from bot.db import Database
from bot.deployment import ConfigInvalid, Loaded, load, report
from bot.settings import Settings
from bot.startup import SchemaOutdated, apply_config, prepare_database

log = logging.getLogger("duban")
T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level)
    result: int = args.run(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="duban", description="督办：机关党建任务督办机器人")
    sub = p.add_subparsers(required=True, metavar="命令")
    serve = sub.add_parser("serve", help="启动服务（HTTP 回调 + 定时任务）/ run the server")
    serve.set_defaults(run=_serve)
    db = sub.add_parser("db", help="数据库 / database").add_subparsers(
        required=True, metavar="操作"
    )
    up = db.add_parser("upgrade", help="升级数据库结构 / apply migrations")
    up.add_argument("--revision", default="head")
    up.set_defaults(run=_db_upgrade)
    db.add_parser("current", help="当前结构版本 / show the schema revision").set_defaults(
        run=_db_current
    )
    conf = sub.add_parser("config", help="配置 / configuration").add_subparsers(
        required=True, metavar="操作"
    )
    check = conf.add_parser("check", help="检查配置 / validate the configuration")
    check.add_argument("path", nargs="?", type=Path, help="配置目录或文件（默认 DUBAN_CONFIG）")
    check.set_defaults(run=_config_check)
    apply = conf.add_parser("apply", help="把配置同步进数据库 / sync it into the database")
    apply.add_argument("path", nargs="?", type=Path)
    apply.set_defaults(run=_config_apply)
    sim = sub.add_parser("simulate", help="用虚拟时钟预演一段时间 / preview a period")
    sim.add_argument(
        "--from",
        dest="first",
        required=True,
        type=date.fromisoformat,
        help="开始日期，如 2026-12-01",
    )
    sim.add_argument(
        "--to",
        dest="last",
        required=True,
        type=date.fromisoformat,
        help="结束日期（含），如 2026-12-31",
    )
    sim.add_argument("--config", type=Path, help="配置目录（默认 DUBAN_CONFIG）")
    sim.add_argument("--script", type=Path, help="聊天脚本（YAML 或 JSON lines）")
    sim.add_argument("--out", type=Path, help="写出 JSON lines；省略则打印可读记录")
    sim.set_defaults(run=_simulate)
    export = sub.add_parser("export", help="导出台账 Excel / export the ledger workbook")
    export.add_argument("--period", required=True, help="期间：2026-11、2026-Q4 或 2026")
    export.add_argument("--out", type=Path, help="输出文件（默认 ./台账-<期间>.xlsx）")
    export.add_argument("--config", type=Path, help="配置目录（默认 DUBAN_CONFIG），取机关工委名称")
    export.set_defaults(run=_export)
    inbox = sub.add_parser("inbox", help="处理失败被搁置的消息 / set-aside inbound messages")
    inbox_ops = inbox.add_subparsers(required=True, metavar="操作")
    inbox_ops.add_parser("list", help="列出搁置的消息 / list them").set_defaults(run=_inbox_list)
    replay = inbox_ops.add_parser("replay", help="交回收件箱重新处理 / hand back to the inbox")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="消息编号（见 duban inbox list）")
    which.add_argument("--all", action="store_true", help="全部可重放的搁置消息")
    replay.add_argument("--platform", help="平台（编号在几个平台都有时指明）")
    replay.set_defaults(run=_inbox_replay)
    return p


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.reports.workbook import Ledger, ledger_filename, write_ledger
    from bot.textdates import parse_period

    now = SystemClock().now()
    period = parse_period(args.period, now.date())
    if period is None:
        print(
            f"无法识别的期间“{args.period}”：应为月份 2026-11、季度 2026-Q4 或年度 2026 "
            "(bad period)",
            file=sys.stderr,
        )
        return 2
    committee = ""
    try:  # only the committee's name comes from the configuration: the ledger is the database
        spec = load(args.config or settings.config, live=False).spec
        committee = spec.committee.short or spec.committee.name
    except ConfigInvalid:
        print("配置有误，台账合计行不写机关工委名称 (configuration invalid)", file=sys.stderr)
    out: Path = args.out or Path(ledger_filename(period))

    async def write(session: AsyncSession) -> Ledger:
        return await write_ledger(session, period, now, committee=committee)

    try:
        ledger = _on_current_schema(settings, write)
        out.write_bytes(ledger.data)
    except SchemaOutdated as e:
        print(e, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"写不了 {out}：{e.strerror} (cannot write the file)", file=sys.stderr)
        return 1
    counts = "、".join(f"{sheet} {n} 行" for sheet, n in ledger.rows.items())
    print(f"已导出{period.label}台账 (ledger written): {out}")
    print(counts)
    return 0


def _on_current_schema(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction; SchemaOutdated when the database is behind."""

    async def run() -> T:
        db = Database(settings.database_url)
        try:
            if not await schema.is_current(db.engine):
                raise SchemaOutdated(
                    "数据库结构不是最新版本，请先运行 `duban db upgrade` (schema outdated)"
                )
            async with db.begin() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _inbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from bot.inbox_admin import describe, set_aside

    try:
        entries = _on_current_schema(settings, set_aside)
    except SchemaOutdated as e:
        print(e, file=sys.stderr)
        return 1
    if not entries:
        print("没有搁置的消息 (no set-aside messages)")
        return 0
    print(f"搁置的消息 {len(entries)} 条 (set-aside messages):")
    for entry in entries:
        print(describe(entry))
    print("重新处理：duban inbox replay <编号> 或 --all (replay one or all)")
    return 0


def _inbox_replay(settings: Settings, args: argparse.Namespace) -> int:
    from bot.inbox_admin import Key, SetAside, give_back, is_seen, set_aside

    async def work(session: AsyncSession) -> tuple[list[SetAside], list[Key], bool]:
        """The set-aside messages asked for, those given back, whether the id is known."""
        entries = await set_aside(session, args.id, args.platform)
        if len({e.platform for e in entries}) > 1 and args.id is not None:
            return entries, [], True  # the same id on two platforms: the operator says which
        given = await give_back(session, [e.key for e in entries if e.readable])
        known = args.id is None or bool(entries) or await is_seen(session, args.id, args.platform)
        return entries, given, known

    try:
        entries, given, known = _on_current_schema(settings, work)
    except SchemaOutdated as e:
        print(e, file=sys.stderr)
        return 1
    unreadable = sum(not e.readable for e in entries)
    if args.id is not None and not given:
        if not known:
            problem = f"没有编号为 {args.id} 的消息 (unknown message id)"
        elif len({e.platform for e in entries}) > 1:
            problem = f"编号 {args.id} 在几个平台都有，请用 --platform 指明 (ambiguous id)"
        elif unreadable:
            problem = f"消息 {args.id} 存储的内容无法读取，不能重放 (stored unreadably)"
        else:
            problem = f"消息 {args.id} 没有被搁置：已处理或正在等待处理 (not set aside)"
        print(problem, file=sys.stderr)
        return 1
    if given:
        print(f"已交回收件箱 {len(given)} 条 (handed back to the inbox):")
        for platform, event_id in given:
            print(f"{platform} {event_id}")
        print("运行中的服务在一分钟内重新处理，未运行则在下次启动时处理")
    else:
        print("没有可重放的搁置消息 (nothing to replay)")
    if unreadable:
        print(f"另有 {unreadable} 条存储的内容无法读取，仍搁置 (unreadable, left aside)")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.simulate import read_script, simulate, write_jsonl, write_transcript

    if args.last < args.first:
        print("结束日期早于开始日期 (--to is before --from)", file=sys.stderr)
        return 2
    try:
        loaded = load(args.config or settings.config, live=False)
        script = read_script(args.script) if args.script else []
    except ConfigInvalid as e:
        print(e, file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"读不了脚本：{e} (cannot read the script)", file=sys.stderr)
        return 1
    posted = asyncio.run(simulate(loaded, args.first, args.last, script))
    if args.out:
        with args.out.open("w", encoding="utf-8") as out:
            write_jsonl(posted, out)
        print(f"已写出 {len(posted)} 条消息到 {args.out} (wrote {len(posted)} messages)")
    else:
        write_transcript(posted, sys.stdout)
    return 0


def _load(settings: Settings, path: Path | None) -> Loaded | None:
    try:
        loaded = load(path or settings.config, live=settings.delivery == "platform")
    except ConfigInvalid as e:
        print(e, file=sys.stderr)
        return None
    if loaded.warnings:
        print(report(loaded.warnings), file=sys.stderr)
    return loaded


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import create_app
    from bot.memory import map_large_blocks

    map_large_blocks()  # before the configuration is read: its text is such a block
    loaded = _load(settings, None)
    if loaded is None:
        return 1
    app = create_app(settings, deployment=loaded)
    del loaded  # the app lets the people go after start-up: nothing here may keep them
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=None,
            shutdown_timeout=10,
            access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        )
    except SchemaOutdated as e:
        log.error("%s", e)
        return 1
    return 0


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        db = Database(settings.database_url)
        try:
            await schema.upgrade(db.engine, args.revision)
            print(f"数据库结构已是 {await schema.current_revision(db.engine)} (schema at revision)")
        finally:
            await db.dispose()

    asyncio.run(run())
    return 0


def _db_current(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str | None:
        db = Database(settings.database_url)
        try:
            return await schema.current_revision(db.engine)
        finally:
            await db.dispose()

    current = asyncio.run(run())
    print(f"current: {current or '-'}  head: {schema.HEAD}")
    return 0 if current == schema.HEAD else 1


def _config_check(settings: Settings, args: argparse.Namespace) -> int:
    loaded = _load(settings, args.path)
    if loaded is None:
        return 1
    s = loaded.spec
    print(
        f"配置检查通过 (configuration OK): {len(s.units)} 个单位、{len(s.communities)} 个共同体、"
        f"{len(s.people)} 名人员、{len(s.groups)} 个群、{len(s.tasks)} 项任务"
    )
    return 0


def _config_apply(settings: Settings, args: argparse.Namespace) -> int:
    loaded = _load(settings, args.path)
    if loaded is None:
        return 1

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            await prepare_database(db, settings.auto_migrate)
            return (await apply_config(db, loaded, SystemClock(), full=True)).summary()
        finally:
            await db.dispose()

    try:
        print(f"配置已同步 (configuration applied): {asyncio.run(run())}")
    except SchemaOutdated as e:
        print(e, file=sys.stderr)
        return 1
    return 0
