"""Chat commands: registration, matching, permissions, and what a handler is given (Ctx).

A handler refuses with UserError; bot.dispatch runs handlers, each message in a transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.deployment import Loaded
from bot.ledger.people import Who
from bot.messages import Inbound, Mention, Outbound
from bot.render import Renderer
from bot.text import match_command

log = logging.getLogger(__name__)
Audience = Literal["all", "worker", "admin"]
Handler = Callable[["Ctx", str], Awaitable[None]]
Fallback = Callable[["Ctx", str], Awaitable[bool]]


class UserError(Exception):
    """An expected refusal: rendered from `template` for the person who asked."""

    def __init__(self, template: str, **variables: Any) -> None:
        super().__init__(template)
        self.template = template
        self.variables = variables


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # the Chinese name shown in help
    aliases: tuple[str, ...]
    handler: Handler
    summary: str
    usage: str
    example: str
    audience: Audience
    # May share a transaction with other messages (see Dispatcher.many): it changes nothing
    # but through the session, so a rollback and a second run leave no trace of the first.
    together: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass
class Router:
    commands: list[Command] = field(default_factory=list)
    by_name: dict[str, Command] = field(default_factory=dict)
    fallbacks: list[Fallback] = field(default_factory=list)

    def command(
        self,
        name: str,
        *aliases: str,
        summary: str,
        usage: str,
        example: str,
        audience: Audience = "all",
        together: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.add(Command(name, aliases, fn, summary, usage, example, audience, together))
            return fn

        return register

    def add(self, cmd: Command) -> None:
        for n in cmd.names:
            if n.lower() in self.by_name:
                raise ValueError(f"command {n!r} registered twice")
            self.by_name[n.lower()] = cmd
        self.commands.append(cmd)

    def fallback(self, fn: Fallback) -> Fallback:
        """Tried in order for text that names no command; returns True when it answered."""
        self.fallbacks.append(fn)
        return fn

    def include(self, other: Router) -> None:
        for cmd in other.commands:
            self.add(cmd)
        self.fallbacks.extend(other.fallbacks)

    def match(self, text: str) -> tuple[Command, str] | None:
        found = match_command(text, self.by_name)
        if found is None:
            return None
        name, args = found
        return self.by_name[name.lower()], args


@dataclass
class Ctx:
    msg: Inbound
    text: str  # normalised
    session: AsyncSession
    who: Who | None
    now: datetime
    deployment: Loaded
    renderer: Renderer
    router: Router
    replies: list[Outbound] = field(default_factory=list)
    # Long-lived objects some commands need (e.g. "scheduling"), by name; see bot.scheduling.
    services: Mapping[str, object] = field(default_factory=dict)

    # `title` is the post's title (DingTalk shows it), so templates cannot use that name.
    async def reply(
        self,
        template: str,
        *,
        mentions: Sequence[Mention] = (),
        title: str = "",
        format: Literal["markdown", "text"] = "markdown",
        image: bytes | None = None,
        **variables: Any,
    ) -> None:
        body = self.renderer.render(template, who=self.who, now=self.now, **variables)
        self.replies.append(Outbound(body, format, title, tuple(mentions), image=image))

    def worker(self) -> Who:
        """The person, who must act for at least one unit."""
        who = self.known()
        if not who.units and not who.is_admin:
            raise UserError("errors/not_worker.md.j2")
        return who

    def known(self) -> Who:
        if self.who is None:
            raise UserError("errors/unknown_person.md.j2")
        return self.who

    def admin(self, command: str = "") -> Who:
        who = self.known()
        if not who.is_admin:
            name = command or self.text.split(" ")[0]
            raise UserError("errors/admin_only.md.j2", command=name)
        return who

    def audit(
        self,
        action: str,
        entity: str,
        key: str,
        before: Any = None,
        after: Any = None,
        detail: str = "",
    ) -> None:
        audit.record(
            self.session,
            at=self.now,
            actor=actor_of(self.msg, self.who),
            action=action,
            entity=entity,
            key=key,
            before=before,
            after=after,
            detail=detail,
        )


def actor_of(msg: Inbound, who: Who | None) -> str:
    return who.key if who else f"{msg.platform}:{msg.sender_id}"[:64]


def may_use(who: Who | None, cmd: Command) -> bool:
    if cmd.audience == "admin":
        return bool(who and who.is_admin)
    if cmd.audience == "worker":
        return bool(who and (who.units or who.is_admin))
    return True
