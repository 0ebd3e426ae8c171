"""The `duban` command line: serve, db upgrade, config check and apply."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from bot import logs, schema
from bot.clock import SystemClock
from bot.db import Database
from bot.deployment import ConfigInvalid, Loaded, load, report
from bot.settings import Settings
from bot.startup import SchemaOutdated, apply_config, prepare_database

log = logging.getLogger("duban")


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
    return p


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

    loaded = _load(settings, None)
    if loaded is None:
        return 1
    try:
        web.run_app(
            create_app(settings, deployment=loaded),
            host=settings.host,
            port=settings.port,
            print=None,
            shutdown_timeout=10,
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
    head = schema.head_revision()
    print(f"current: {current or '-'}  head: {head}")
    return 0 if current == head else 1


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
            return (await apply_config(db, loaded, SystemClock())).summary()
        finally:
            await db.dispose()

    try:
        print(f"配置已同步 (configuration applied): {asyncio.run(run())}")
    except SchemaOutdated as e:
        print(e, file=sys.stderr)
        return 1
    return 0
