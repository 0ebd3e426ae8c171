"""Chat commands, one family per module; they receive platform-neutral messages only.

Every module here that defines `router` is included. Help lists families in ORDER first
(what a liaison needs most comes first), then any others by name.
"""

from __future__ import annotations

import importlib
import pkgutil

from bot.routing import Router

ORDER = ("help", "me", "tasks", "checkin", "proxy", "progress", "overdue", "problems", "binding")


def build_router() -> Router:
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    ordered = [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)
    router = Router()
    for name in ordered:
        family = getattr(importlib.import_module(f"{__name__}.{name}"), "router", None)
        if isinstance(family, Router):
            router.include(family)
    return router
