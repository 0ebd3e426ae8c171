"""Handling inbound messages: each in one transaction, or a burst's run of check-ins in one.

The handler's changes, the audit entries and the replies (as outbox rows) commit together. A
UserError rolls the changes back and answers with its template; anything else is logged and
answered with a short reference, never the exception. Under load the inbox hands several
messages over at once (`Dispatcher.many`): commands marked `together` then share a
transaction, and one that fails there is handled alone in its place, as it would have been.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.deployment import Loaded
from bot.inbound import message_key, take, take_many
from bot.ledger.people import People
from bot.messages import Inbound, Outbound
from bot.render import Renderer
from bot.routing import Command, Ctx, Router, UserError, may_use
from bot.text import closest, normalize

log = logging.getLogger(__name__)
Answered = tuple[Inbound, Sequence[Outbound]]
# Queues the replies to any number of messages, in the caller's transaction.
PostReplies = Callable[[AsyncSession, Sequence[Answered]], Awaitable[None]]
# Messages handled in one transaction at most: its locks and its work are lost, and done
# again, when one of them fails.
TOGETHER = 50
# Deadlock detected, serialization failure: the database failed a transaction to let another
# finish, and it goes again (a few times) rather than answering with an internal error.
CONFLICTS = frozenset({"40P01", "40001"})
CONFLICT_RETRIES = 3


class _Failed(Exception):
    """Message `index` of a shared transaction raised: the transaction is rolled back."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


Matched = tuple[Inbound, str, "tuple[Command, str] | None"]  # message, normalised text, command


class Dispatcher:
    """The inbox's dispatch: one inbound message → the matching command, in one transaction;
    or, under load, a run of messages whose commands allow it in one transaction together."""

    def __init__(
        self,
        router: Router,
        db: Database,
        deployment: Loaded,
        renderer: Renderer,
        clock: Any,
        post: PostReplies,
        bot_names: Sequence[str] = (),
        on_commit: Callable[[], None] = lambda: None,
        services: Mapping[str, object] | None = None,
    ) -> None:
        self.router, self.db, self.deployment, self.renderer = router, db, deployment, renderer
        self.clock, self.post, self.bot_names = clock, post, tuple(bot_names)
        self.on_commit = on_commit  # wakes the delivery worker for the replies just queued
        self.services: Mapping[str, object] = services if services is not None else {}
        self.people = People()  # person → units, remembered briefly (see People)

    async def __call__(self, msg: Inbound) -> None:
        try:
            await self._handle(self._match(msg))
        finally:
            self.on_commit()

    async def many(self, msgs: Sequence[Inbound]) -> None:
        """Handle `msgs` in order, as `__call__` would one by one, but a run of messages whose
        commands allow it in one transaction: a burst of check-ins then costs a few statements
        each instead of a transaction each. A message that fails in company is handled alone,
        exactly as it would have been (its refusal or error answered, in its own transaction);
        the others go again without it."""
        try:
            pending = [self._match(m) for m in msgs]
            while pending:
                run = 0
                while run < min(len(pending), TOGETHER) and _together(pending[run][2]):
                    run += 1
                done = await self._together(pending[:run]) if run > 1 else 0
                if done < len(pending):
                    await self._handle(pending[done])
                    done += 1
                del pending[:done]
        finally:
            self.on_commit()

    def _match(self, msg: Inbound) -> Matched:
        text = normalize(msg.text, self.bot_names)
        return msg, text, self.router.match(text)

    async def _together(self, run: Sequence[Matched]) -> int:
        """How many of `run`'s first messages were handled in one transaction (all of them,
        or those before the first that failed, which is left to be handled alone)."""
        n, conflicts = len(run), 0
        while n > 1:
            try:
                await self._attempt(run[:n])
                return n
            except Exception as e:
                if _conflict(e):
                    if conflicts == CONFLICT_RETRIES:  # expected under contention: no traceback
                        log.warning(
                            "%d messages met other transactions' locks %d times; "
                            "handling them one by one",
                            n,
                            conflicts + 1,
                        )
                        return 0
                    conflicts += 1  # nobody's fault: the same messages again
                    log.info("%d messages met another transaction's locks: again", n)
                elif isinstance(e, _Failed):
                    n = e.index  # the ones before it did nothing wrong: again without it
                else:  # at the commit: nobody to blame, so one at a time
                    log.warning(
                        "%d messages failed together; handling them one by one", n, exc_info=True
                    )
                    return 0
        return 0

    async def _attempt(self, run: Sequence[Matched]) -> None:
        async with self.db.begin() as session:
            now = self.clock.now()
            fresh = await take_many(session, [msg for msg, _, _ in run], now)
            await self.people.recall(session, ((m.platform, m.sender_id) for m, _, _ in run))
            answered: list[Answered] = []
            for i, (msg, text, found) in enumerate(run):
                if message_key(msg) not in fresh:
                    log.info("%s message %s was handled already", msg.platform, msg.event_id)
                    continue
                try:
                    ctx = await self._ctx(msg, text, session)
                    await self._run(ctx, found)
                    ctx.audit(f"command:{_name(found)}", "message", msg.event_id, detail=text[:500])
                except Exception as e:
                    raise _Failed(i) from e
                answered.append((msg, ctx.replies))
            await self.post(session, answered)

    async def _handle(self, matched: Matched) -> None:
        msg, text, found = matched
        name = _name(found)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                async with self.db.begin() as session:
                    if not await take(session, msg, self.clock.now()):
                        log.info("%s message %s was handled already", msg.platform, msg.event_id)
                        return
                    ctx = await self._ctx(msg, text, session)
                    await self._run(ctx, found)
                    ctx.audit(f"command:{name}", "message", msg.event_id, detail=text[:500])
                    await self.post(session, [(msg, ctx.replies)])
                return
            except UserError as refusal:
                await self._refuse(matched, refusal)
                return
            except Exception as e:
                if attempt < CONFLICT_RETRIES and _conflict(e):
                    log.info(
                        "%s message %s met another transaction's locks: again",
                        msg.platform,
                        msg.event_id,
                    )
                    continue
                log.exception(
                    "command %s failed for %s message %s", name, msg.platform, msg.event_id
                )
                await self._answer_failure(matched)
                return

    async def _refuse(self, matched: Matched, refusal: UserError) -> None:
        msg, text, found = matched
        async with self.db.begin() as session:
            if not await take(session, msg, self.clock.now()):
                return
            ctx = await self._ctx(msg, text, session)
            await ctx.reply(refusal.template, **refusal.variables)
            ctx.audit(
                f"refused:{_name(found)}",
                "message",
                msg.event_id,
                detail=f"{refusal.template} {text[:400]}",
            )
            await self.post(session, [(msg, ctx.replies)])

    async def _answer_failure(self, matched: Matched) -> None:
        msg, text, _ = matched
        async with self.db.begin() as session:
            if not await take(session, msg, self.clock.now()):
                return
            ctx = await self._ctx(msg, text, session)
            await ctx.reply("errors/internal.md.j2", ref=msg.event_id[-6:])
            await self.post(session, [(msg, ctx.replies)])

    async def _ctx(self, msg: Inbound, text: str, session: AsyncSession) -> Ctx:
        who = await self.people.whois(session, msg.platform, msg.sender_id)
        return Ctx(
            msg,
            text,
            session,
            who,
            self.clock.now(),
            self.deployment,
            self.renderer,
            self.router,
            services=self.services,
        )

    async def _run(self, ctx: Ctx, found: tuple[Command, str] | None) -> None:
        if found is None:
            for fallback in self.router.fallbacks:
                if await fallback(ctx, ctx.text):
                    return
            names = [c.name for c in self.router.commands if may_use(ctx.who, c)]
            word = ctx.text.split(" ")[0] if ctx.text else ""
            raise UserError(
                "errors/unknown_command.md.j2",
                word=word,
                hints=closest(word, names) if word else [],
            )
        cmd, args = found
        if cmd.audience == "admin":
            ctx.admin(cmd.name)
        elif cmd.audience == "worker":
            ctx.worker()
        await cmd.handler(ctx, args)


def _conflict(exc: BaseException | None) -> bool:
    """PostgreSQL broke a deadlock or a serialization conflict by failing this transaction:
    nothing was wrong with the messages in it."""
    while exc is not None:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) in CONFLICTS:
            return True
        exc = exc.__cause__
    return False


def _name(found: tuple[Command, str] | None) -> str:
    return found[0].name if found else "-"


def _together(found: tuple[Command, str] | None) -> bool:
    return found is not None and found[0].together


def outbox_poster(deployment: Loaded, clock: Any) -> PostReplies:
    """Replies become outbox rows in the messages' own transaction, keyed by the message id so
    a re-run of the same message can never answer twice."""
    from bot.outbox import Queued, enqueue, enqueue_many, reply_target

    async def post(session: AsyncSession, answered: Sequence[Answered]) -> None:
        queued = [
            Queued(reply, reply_target(msg, deployment), "reply", _reply_key(msg, i))
            for msg, replies in answered
            for i, reply in enumerate(replies)
        ]
        if len(queued) == 1:  # one INSERT; the driver's executemany costs a statement more
            q = queued[0]
            await enqueue(
                session, q.message, to=q.to, kind=q.kind, now=clock.now(), dedupe_key=q.dedupe_key
            )
        elif queued:
            await enqueue_many(session, queued, now=clock.now())

    return post


def _reply_key(msg: Inbound, i: int) -> str:
    return f"reply:{msg.platform}:{msg.event_id}:{i}"[:255]
