"""Chat commands, one family per module; they receive platform-neutral messages only.

`build_router()` assembles them; the order of `include` is the order help lists them in.
"""

from __future__ import annotations

from bot.routing import Router


def build_router() -> Router:
    from handlers import checkin, help, me, tasks

    router = Router()
    for family in (help, me, tasks, checkin):
        router.include(family.router)
    return router
